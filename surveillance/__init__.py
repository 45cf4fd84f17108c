"""What counts as abnormal, shared by the node and central: rule settings, texts, geometry and
the pure mortality-cluster logic. Imports only the contract (broker) and models, never edge or
central, and never a model runtime or a database."""

from broker.payloads import RuleName

__all__ = ["RuleName"]
