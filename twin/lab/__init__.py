"""The lab model: the one description of a lab, from YAML file to validated, addressed topology."""
from twin.lab.schema import LabSpec, NodeSpec, LinkSpec, GroupSpec, KINDS
from twin.lab.loader import load_lab, parse_lab

__all__ = ["LabSpec", "NodeSpec", "LinkSpec", "GroupSpec", "KINDS", "load_lab", "parse_lab"]
