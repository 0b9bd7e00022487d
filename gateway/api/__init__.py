"""The HTTP API, one module per resource; each exports ENDPOINTS."""
