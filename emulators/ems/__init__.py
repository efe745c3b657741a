"""Element-management servers (spec 001): bully election, element assignment, peered and federated services, distributed circuit routing."""
