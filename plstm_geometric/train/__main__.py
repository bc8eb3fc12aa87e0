"""``python -m plstm_geometric.train``: graph training (with no arguments, pLSTM on the embedded nci-tpsa set)."""

import sys

from .cli import main

sys.exit(main())
