"""Recommendations: items and interactions in, personalised top-N out (task ``recommendation``)."""
