"""Customer groups (客群): definitions, live preview, review (审核) and the approved member snapshot."""
