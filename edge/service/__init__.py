"""The inspection service: cameras -> tiles -> encoder -> scores -> decision -> sinks."""
