"""Strict GitLab and Jenkins emulators: real HTTP servers, driven only through python-gitlab and
python-jenkins. They follow /work/shared/reference/gitlab.md and jenkins.md; where they disagree
with the real servers, fix the emulator.

Fixtures (tests/emulators/fixtures.py, registered by tests/conftest.py)
-----------------------------------------------------------------------
``gitlab_emulator``        started :class:`~tests.emulators.gitlab.GitLabEmulator`, seeded:
                           users/tokens in ``.tokens``: ``maintainer``, ``developer``, ``outsider``;
                           projects ``demo/hello-web``, ``demo/app``, ``demo/backend/api``,
                           ``demo/backend/deep/worker`` (maintainer=Maintainer, developer=Developer),
                           ``demo/legacy`` (archived), ``other/secret`` (only outsider; hidden -> 404).
``gitlab_api``             ``gitlab.Gitlab`` as ``maintainer`` (retry_transient_errors=True).
``make_gitlab_emulator``   factory ``(seed=True, max_hooks_per_project=100)`` -> started emulator.
``jenkins_emulator``       started :class:`~tests.emulators.jenkins.JenkinsEmulator`, user
                           ``conveyor`` with API token ``fixtures.JENKINS_API_TOKEN`` (and password
                           ``JENKINS_PASSWORD`` for session-style auth), ``crumb_mode="strict"``,
                           anonymous locked out (``get_version()`` before any authenticated call
                           fails, as on a locked-down Jenkins).
``jenkins_api``            ``jenkins.Jenkins`` for that user.
``make_jenkins_emulator``  factory ``(seed=True, crumb_mode="strict"|"session"|"disabled",
                           anonymous_read=False, queue_delay=0.0, build_duration=0.0)``.
Every emulator is stopped at teardown. ``.url`` is ``http://127.0.0.1:<port>``.

Shared by both (tests/emulators/server.py)
------------------------------------------
``emu.log``     :class:`RequestLog`: ``records(method=None, path_regex=None)`` -> list of
                :class:`RequestRecord` (method, decoded path, query, body, status (0 = dropped),
                headers; ``.json()``), ``writes(path_regex=None)``, ``count_writes(path_regex=None)``
                (POST/PUT/PATCH/DELETE), ``clear()``, ``len()``.
``emu.faults``  :class:`FaultInjector`, thread-safe, for the next ``times`` requests matching a
                method regex and a path regex (searched in the decoded path):
                ``rate_limit(method, path, times=1, retry_after=1)`` (429 + Retry-After),
                ``error(method, path, status=500, times=1)``, ``slow(method, path, delay=, times=1)``,
                ``drop(method, path, times=1)`` (socket closed, request not handled),
                ``add(...)`` for combinations, ``pending()``, ``clear()``.
``emu.latency`` seconds added to every request (benchmarks).
``emu.lock``    guards the emulator state if a test pokes at it directly.

GitLab inspection and seeding
-----------------------------
``add_user(name, token)``, ``add_group(full_path)``, ``add_project(path, default_branch="main",
archived=False, visibility="private", members={user: role})``, ``set_role(project, user, role|None)``,
``project(ref)`` (``.commits = {sha, ...}`` makes unknown shas 404), ``insert_hook(project, url,
token=None, **fields) -> id`` (no validation, not logged), ``hooks(project)`` (stored dicts *with*
``token``), ``hook_token(project, hook_id)``, ``statuses(project=None, sha=None)`` -> the accepted status
posts in order (:class:`StatusRecord`, ``status_id`` = the record moved), ``commit_statuses(project,
sha)`` -> GitLab's status records (:class:`CommitStatus`: reused while pending/running, moved only by
legal transitions, else 400), ``protect_branch(project, name, push=, merge=)`` /
``protect_tag(project, name, create=)`` (levels ``no one|developer|maintainer``; 403 without rights
there), ``add_pipeline(project, sha, ref, tag=False)``, ``fork_project(source, path, members=)``,
``add_merge_request(project, source_branch=, target_branch=, sha=, source_project=None) -> iid``,
``merge_request_pipeline(project, iid)`` (the head pipeline the MR shows, or ``None``),
``max_hooks_per_project``. Hooks: constructor ``version="19.0.0"`` (``token_present``,
``signing_token``), ``allow_local_requests=True`` (else 422 for loopback/private hook URLs),
``failure_categories="ok_error"`` (newer GitLab: 4xx backs off instead of disabling);
``deliver(project, event="push_events", payload=None, ref=...)`` -> :class:`Delivery` list (real
POSTs to executable hooks; the answer moves ``alert_status``/``disabled_until``),
``deliveries(project)``, ``hook_state(project, hook_id)``, ``advance(seconds)`` (the clock),
``rename_project(project, new_path)`` (old path still resolves), ``share_project(project, group)``,
``lose_create_answers = N`` (created, answered 502). No 429 on hook creation; the test endpoint
allows 5 a minute.

Jenkins inspection and seeding
------------------------------
``add_user(name, api_token, password=None)``, ``item(full_name)`` / ``has_item(full_name)``,
``stored_config(full_name)``, ``hand_edit(full_name, xml)`` (a UI save: stored through the same
rewriting), ``create_item_directly(full_name, xml)``, ``secret_plaintext(ciphertext)``,
``encrypt_secret(value)`` (module function, deterministic), ``next_result(job, *results)``,
``default_result``, ``queue_delay``, ``build_duration``, ``triggered_builds(job=None)`` -> ordered
:class:`TriggeredBuild` (job, number, queue_id, parameters with defaults filled, user,
``environment``: for builds gitlab-plugin started, its cause's variables with the parameters on top).

Jenkins saves (tests/emulators/jenkins_model.py): a stored job is the object model written back, not
the bytes sent: absent primitive fields get Java's defaults, unknown fields and triggers without
``<spec>`` are dropped (listed in ``item(name).old_data``, "Manage Old Data"), ``POST config.xml``
keeps top-level fields it leaves out (``<actions>``), and a build of a Declarative Jenkinsfile saves
the job again (``DeclarativeJobAction``, ``DeclarativeJobPropertyTrackerAction``, properties
rewritten from its ``options``/``parameters``). ``add_scm_file(url, path, text)`` gives a
``CpsScmFlowDefinition`` job its Jenkinsfile.

gitlab-plugin (tests/emulators/gitlab_plugin.py): ``POST /project/<job full name>`` (no auth, no
crumb, ``X-Gitlab-Token`` checked against the trigger's secret: 401) runs the plugin's push and merge
request handlers on the stored ``GitLabPushTrigger``; ``hook_outcomes`` records each decision and
reason; ``built_commits`` ``{(job, sha)}`` models "last commit already built".
"""
