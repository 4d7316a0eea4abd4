"""The kopf operator: ModelDeployment spec -> rollout decisions -> Kubernetes objects."""
