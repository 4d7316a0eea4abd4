"""Facts shared by the server, the gateway and the operator. No dependencies."""
