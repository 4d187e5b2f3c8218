"""Chart sources: Helm HTTP(S) repositories and OCI registries, read with credentials in memory only.

`source.py` fetches index files, tag lists and chart archives (basic auth, OCI token exchange, CA
bundles and client certificates through in-memory files); `archive.py` reads a chart archive's
Chart.yaml, values.yaml, values.schema.json and README within size bounds. Used by the agent (a
chart from a private source is fetched here and handed to helm as a local archive, so helm never
sees a credential) and by the server (catalog, values schema check). Imports only moorage.spec."""
