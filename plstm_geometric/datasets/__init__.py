from .ape import APEDataset
from .build_ogb import build_ogb_dataset
from .embedded import EmbeddedMolDataset
from .evaluator import OGBStyleEvaluator
from .lrgb import PeptidesFunctional, prepare_peptides
from .ogb import OGBMolDataset
from .registry import load_dataset, resolve_dataset_name
from .safe_load import DatasetFileError, load_index_pickle, safe_torch_load
from .scaffold import scaffold_split
from .tu import KNOWN_TU_NAMES, TUGraphDataset, best_validation_accuracy, is_tu_name, prepare_tu, tu_folds
from .tu_raw import MAX_TU_LABEL_VALUES, check_tu_raw

__all__ = [
    "load_dataset",
    "resolve_dataset_name",
    "OGBMolDataset",
    "build_ogb_dataset",
    "EmbeddedMolDataset",
    "TUGraphDataset",
    "KNOWN_TU_NAMES",
    "is_tu_name",
    "prepare_tu",
    "check_tu_raw",
    "MAX_TU_LABEL_VALUES",
    "tu_folds",
    "best_validation_accuracy",
    "PeptidesFunctional",
    "prepare_peptides",
    "APEDataset",
    "OGBStyleEvaluator",
    "scaffold_split",
    "DatasetFileError",
    "safe_torch_load",
    "load_index_pickle",
]
