"""Customer tags: manual tags and rule tags (safe, whitelisted JSON rules compiled to parameterised SQL)."""
