from .dag import plstm_dag
from .reference import plstm_dag_reference

from .scan import linear_recurrence
from .grid import GRID_ORIENTATIONS, flip_grid, plstm_grid, plstm_grid_oriented, plstm_grid_orientations
