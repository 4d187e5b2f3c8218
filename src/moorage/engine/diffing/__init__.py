"""Pure building blocks of the drift diff (``moorage.engine.diff`` is the public façade).

``normalize``: strip server/Helm-populated fields. ``managedfields``: FieldsV1 ownership.
``ignore``: Argo CD style ignore rules. ``values``: scalar/quantity equality. ``compare``: the
tree walk. ``model``: result types. No module here performs I/O.
"""
