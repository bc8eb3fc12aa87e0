
from .ape import APEDataset
from .ogb import OGBMolDataset
from .build_ogb import build_ogb_dataset
from .embedded import EmbeddedMolDataset
from .evaluator import OGBStyleEvaluator
from .lrgb import PeptidesFunctional, prepare_peptides
from .safe_load import DatasetFileError, load_index_pickle, safe_torch_load
from .scaffold import scaffold_split
from .tu import KNOWN_TU_NAMES, TUGraphDataset, best_validation_accuracy, is_tu_name, prepare_tu, tu_folds
from .registry import load_dataset
