"""The Stack Builder: edits of a cluster definition in Git, validated, previewed and committed."""
