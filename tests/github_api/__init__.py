"""A local GitHub REST API for tests, built from GitHub's published OpenAPI description."""
