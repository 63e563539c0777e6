"""What users write: definitions, contexts, refs, policies, registry."""
