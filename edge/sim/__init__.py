"""The simulated production line (``sim://line?seed=N``): parts with known defects.

Used to commission the service without hardware, to train and evaluate the demo models,
and in the tests. Every frame carries ground truth, and the same seed gives the same frames.
"""

from edge.sim.scene import DEFECTS, LineSimulator, SimFrame, SimTruth
from edge.sim.source import SimParams, parse_sim_url, simulator

__all__ = ["DEFECTS", "LineSimulator", "SimFrame", "SimParams", "SimTruth", "parse_sim_url", "simulator"]
