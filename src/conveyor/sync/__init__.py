"""Converge Jenkins jobs and GitLab hooks to the specs: plan (reads only), apply, destroy."""
