"""GitLab side of conveyor: the python-gitlab client (``client``), webhook reconciliation
(``hooks``), commit statuses (``status``), group project listing (``groups``) and webhook payload
parsing (``events``)."""
