
from .ape import APEDataset
from .ogb import OGBMolDataset
from .build_ogb import build_ogb_dataset
from .embedded import EmbeddedMolDataset
from .evaluator import OGBStyleEvaluator
from .scaffold import scaffold_split
from .tu import TUGraphDataset, best_validation_accuracy, tu_folds
from .registry import load_dataset
