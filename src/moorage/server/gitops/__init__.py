"""GitOps: repositories, credentials, webhooks, polling and the sync runner."""
