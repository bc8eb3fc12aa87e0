from .dag import plstm_dag
from .reference import plstm_dag_reference

from .scan import linear_recurrence
