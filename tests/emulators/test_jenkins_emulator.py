"""The Jenkins emulator, driven through python-jenkins (and raw requests where python-jenkins
would hide the behaviour under test)."""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

import jenkins
import pytest
import requests

from tests.emulators.fixtures import JENKINS_API_TOKEN, JENKINS_PASSWORD, JENKINS_USER
from tests.emulators.jenkins import JenkinsEmulator, encrypt_secret

PIPELINE = """<?xml version="1.0" encoding="UTF-8"?>
<flow-definition plugin="workflow-job">
  <description>demo</description>
  <keepDependencies>false</keepDependencies>
  <properties>
    <org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>
      <triggers>
        <com.dabsquared.gitlabjenkins.GitLabPushTrigger plugin="gitlab-plugin">
          <spec></spec>
          <triggerOnPush>true</triggerOnPush>
          <secretToken>hook-secret</secretToken>
        </com.dabsquared.gitlabjenkins.GitLabPushTrigger>
      </triggers>
    </org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>
  </properties>
  <definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition" plugin="workflow-cps">
    <script>pipeline { agent any; stages { stage('x') { steps { sh 'echo "hi" &amp;&amp; true' } } } }</script>
    <sandbox>true</sandbox>
  </definition>
  <disabled>false</disabled>
</flow-definition>
"""

PARAMETERIZED = """<flow-definition>
  <properties>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>BRANCH</name>
          <defaultValue>main</defaultValue>
        </hudson.model.StringParameterDefinition>
        <hudson.model.BooleanParameterDefinition>
          <name>DEPLOY</name>
          <defaultValue>false</defaultValue>
        </hudson.model.BooleanParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition">
    <script>echo 'x'</script>
    <sandbox>true</sandbox>
  </definition>
</flow-definition>"""

Maker = Callable[..., JenkinsEmulator]


def _client(emulator: JenkinsEmulator, secret: str = JENKINS_API_TOKEN) -> jenkins.Jenkins:
    return jenkins.Jenkins(emulator.url, username=JENKINS_USER, password=secret, timeout=10)


# ---------------------------------------------------------------------------- auth, crumbs, version
def test_version_needs_auth_when_locked_down(make_jenkins_emulator: Maker) -> None:
    locked = make_jenkins_emulator()
    with pytest.raises(jenkins.BadHTTPException):
        _client(locked).get_version()  # python-jenkins sends no auth on this first call
    open_read = make_jenkins_emulator(anonymous_read=True)
    assert _client(open_read).get_version() == "2.452.1"
    client = _client(locked)
    assert client.get_whoami()["id"] == JENKINS_USER
    assert client.get_version() == "2.452.1"


def test_bad_credentials_are_401(jenkins_emulator: JenkinsEmulator) -> None:
    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]"):
        _client(jenkins_emulator, "wrong").get_whoami()


def test_strict_crumbs_are_sent_by_python_jenkins(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_job("app", PIPELINE)
    posts = jenkins_emulator.log.records("POST")
    assert [p.status for p in posts] == [200]
    assert posts[0].headers["jenkins-crumb"]
    assert "jsessionid" in posts[0].headers["cookie"].lower()
    issued = jenkins_emulator.log.records("GET", r"^/crumbIssuer/api/json$")
    assert len(issued) == 1  # asked once, then reused


def test_post_without_valid_crumb_is_403(jenkins_emulator: JenkinsEmulator) -> None:
    url = f"{jenkins_emulator.url}/createItem?name=app"
    auth = (JENKINS_USER, JENKINS_API_TOKEN)
    headers = {"Content-Type": "text/xml"}
    bare = requests.post(url, data=PIPELINE, auth=auth, headers=headers, timeout=10)
    assert bare.status_code == 403
    session = requests.Session()
    crumb = session.get(
        f"{jenkins_emulator.url}/crumbIssuer/api/json", auth=auth, timeout=10
    ).json()
    assert crumb["crumbRequestField"] == "Jenkins-Crumb"
    stolen = requests.post(
        url,
        data=PIPELINE,
        auth=auth,
        headers={**headers, "Jenkins-Crumb": crumb["crumb"]},
        timeout=10,
    )
    assert stolen.status_code == 403  # a crumb is only valid with its session
    good = session.post(
        url,
        data=PIPELINE,
        auth=auth,
        headers={**headers, "Jenkins-Crumb": crumb["crumb"]},
        timeout=10,
    )
    assert good.status_code == 200
    assert good.headers["X-Jenkins"] == "2.452.1"
    assert jenkins_emulator.has_item("app")


def test_crumb_refused_post_does_nothing(jenkins_emulator: JenkinsEmulator) -> None:
    """CrumbFilter.doFilter answers 403 before the request reaches its action: a trigger sent
    with a stale crumb (Jenkins restarted since it was issued) queues no build."""
    api = jenkins.Jenkins(jenkins_emulator.url, JENKINS_USER, JENKINS_API_TOKEN)
    api.create_job("app", PIPELINE)
    with jenkins_emulator.lock:
        jenkins_emulator._sessions.clear()  # a restart: every issued crumb is void
    with pytest.raises(jenkins.JenkinsException, match=r"\[403\].*\n.*No valid crumb"):
        api.build_job("app")
    assert jenkins_emulator.triggered_builds() == []


def test_session_mode_exempts_api_tokens_only(make_jenkins_emulator: Maker) -> None:
    emulator = make_jenkins_emulator(crumb_mode="session")
    url = f"{emulator.url}/createItem?name=app"
    headers = {"Content-Type": "text/xml"}
    by_password = requests.post(
        url, data=PIPELINE, auth=(JENKINS_USER, JENKINS_PASSWORD), headers=headers, timeout=10
    )
    assert by_password.status_code == 403
    by_token = requests.post(
        url, data=PIPELINE, auth=(JENKINS_USER, JENKINS_API_TOKEN), headers=headers, timeout=10
    )
    assert by_token.status_code == 200


def test_disabled_crumb_issuer_is_404_and_python_jenkins_copes(
    make_jenkins_emulator: Maker,
) -> None:
    emulator = make_jenkins_emulator(crumb_mode="disabled")
    client = _client(emulator)
    client.create_job("app", PIPELINE)
    assert client.job_exists("app")
    assert emulator.log.records("GET", "crumbIssuer")[0].status == 404
    assert client.crumb is False  # python-jenkins never asks again
    assert len(emulator.log.records("GET", "crumbIssuer")) == 1


# ---------------------------------------------------------------------------- items
def test_folders_and_jobs(jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator) -> None:
    jenkins_api.create_folder("team")
    assert jenkins_emulator.log.records("POST")[0].status == 302
    jenkins_api.create_folder("team/sub")
    jenkins_api.create_job("team/sub/app", PIPELINE)
    assert jenkins_api.job_exists("team/sub/app") is True
    assert jenkins_api.job_exists("team/sub/nope") is None
    info = jenkins_api.get_job_info("team/sub/app")
    assert info["fullName"] == "team/sub/app"
    assert info["_class"] == "org.jenkinsci.plugins.workflow.job.WorkflowJob"
    assert info["color"] == "notbuilt"
    names = [j["fullname"] for j in jenkins_api.get_all_jobs()]
    assert names == ["team", "team/sub", "team/sub/app"]
    top = jenkins_api.get_jobs()
    assert [j["name"] for j in top] == ["team"]
    with pytest.raises(jenkins.JenkinsException, match="folder for the job does not exist"):
        jenkins_api.create_job("missing/app", PIPELINE)
    with pytest.raises(jenkins.JenkinsException, match="Probably it already exists"):
        jenkins_api.create_folder("team")


def test_get_all_jobs_follows_deep_folders(jenkins_api: jenkins.Jenkins) -> None:
    path = ""
    for level in "abcd":
        path = f"{path}/{level}" if path else level
        jenkins_api.create_folder(path)
    jenkins_api.create_job(f"{path}/leaf", PIPELINE)
    names = [j["fullname"] for j in jenkins_api.get_all_jobs(folder_depth_per_request=1)]
    assert names == ["a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/leaf"]


def test_existing_job_is_400(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_job("app", PIPELINE)
    crumbed = requests.Session()
    auth = (JENKINS_USER, JENKINS_API_TOKEN)
    crumb = crumbed.get(
        f"{jenkins_emulator.url}/crumbIssuer/api/json", auth=auth, timeout=10
    ).json()
    response = crumbed.post(
        f"{jenkins_emulator.url}/createItem?name=app",
        data=PIPELINE,
        auth=auth,
        headers={"Content-Type": "text/xml", "Jenkins-Crumb": crumb["crumb"]},
        timeout=10,
    )
    assert response.status_code == 400
    assert "A job already exists with the name" in response.text


@pytest.mark.parametrize(
    "name", ["bad?name", "a*b", "x%y", "semi;colon", "br[ack]et", "at@", ".", "..", "trailing."]
)
def test_bad_names_are_400(jenkins_emulator: JenkinsEmulator, name: str) -> None:
    session = requests.Session()
    auth = (JENKINS_USER, JENKINS_API_TOKEN)
    crumb = session.get(
        f"{jenkins_emulator.url}/crumbIssuer/api/json", auth=auth, timeout=10
    ).json()
    response = session.post(
        f"{jenkins_emulator.url}/createItem",
        params={"name": name},
        data=PIPELINE,
        auth=auth,
        headers={"Content-Type": "text/xml", "Jenkins-Crumb": crumb["crumb"]},
        timeout=10,
    )
    assert response.status_code == 400
    assert jenkins_emulator.root.children == {}


def test_malformed_xml_is_500(jenkins_api: jenkins.Jenkins) -> None:
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        jenkins_api.create_job("app", "<flow-definition><oops></flow-definition>")


def test_delete_job_redirects_and_removes(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_folder("f")
    jenkins_api.create_job("f/app", PIPELINE)
    jenkins_api.delete_job("f/app")
    assert jenkins_emulator.log.records("POST", "doDelete")[0].status == 302
    assert jenkins_api.job_exists("f/app") is None
    with pytest.raises(jenkins.NotFoundException):
        jenkins_api.get_job_config("f/app")


# ---------------------------------------------------------------------------- config.xml
def test_stored_config_is_rewritten_like_jenkins(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_job("app", PIPELINE)
    stored = jenkins_api.get_job_config("app")
    assert stored != PIPELINE
    assert stored.startswith(
        "<?xml version='1.1' encoding='UTF-8'?>\n<flow-definition plugin=\"workflow-job@"
    )
    root = ET.fromstring(stored.encode())
    trigger = root.find(".//com.dabsquared.gitlabjenkins.GitLabPushTrigger")
    assert trigger is not None and trigger.get("plugin", "").startswith("gitlab-plugin@")
    definition = root.find("definition")
    assert definition is not None and definition.get("plugin", "").startswith("workflow-cps@")
    cipher = root.findtext(".//secretToken")
    assert cipher == encrypt_secret("hook-secret") and cipher.startswith("{AQAAAB")
    assert "hook-secret" not in stored
    assert jenkins_emulator.secret_plaintext(cipher) == "hook-secret"
    assert "sh &apos;echo &quot;hi&quot; &amp;&amp; true&apos;" in stored
    assert (
        root.findtext(".//script")
        == "pipeline { agent any; stages { stage('x') { steps { sh 'echo \"hi\" && true' } } } }"
    )
    assert root.find("actions") is not None
    # resubmitting the stored form keeps it byte-stable (ciphertext is not encrypted twice)
    jenkins_api.reconfig_job("app", stored)
    assert jenkins_api.get_job_config("app") == stored


def test_changing_job_type_is_500(jenkins_api: jenkins.Jenkins) -> None:
    jenkins_api.create_job("app", PIPELINE)
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        jenkins_api.reconfig_job("app", "<project><builders/></project>")


def test_hand_edit_is_visible(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_job("app", PIPELINE)
    edited = jenkins_emulator.stored_config("app").replace(
        "<description>demo</description>", "<description>edited in UI</description>"
    )
    jenkins_emulator.hand_edit("app", edited)
    assert "<description>edited in UI</description>" in jenkins_api.get_job_config("app")


# ---------------------------------------------------------------------------- builds
def test_build_lifecycle(make_jenkins_emulator: Maker) -> None:
    emulator = make_jenkins_emulator(queue_delay=0.3, build_duration=0.3)
    client = _client(emulator)
    client.create_job("app", PARAMETERIZED)
    emulator.next_result("app", "FAILURE")
    queue_id = client.build_job("app", {"BRANCH": "feature/x"})
    assert emulator.log.records("POST", "buildWithParameters")[0].status == 201
    waiting = client.get_queue_item(queue_id)
    assert "executable" not in waiting and waiting["why"]
    deadline = time.monotonic() + 10
    item = waiting
    while "executable" not in item and time.monotonic() < deadline:
        time.sleep(0.05)
        item = client.get_queue_item(queue_id)
    assert item["executable"]["number"] == 1
    running = client.get_build_info("app", 1)
    assert running["building"] is True and running["result"] is None
    while client.get_build_info("app", 1)["building"] and time.monotonic() < deadline:
        time.sleep(0.05)
    done = client.get_build_info("app", 1)
    assert done["result"] == "FAILURE"
    params = done["actions"][0]["parameters"]
    assert {p["name"]: p["value"] for p in params} == {"BRANCH": "feature/x", "DEPLOY": "false"}
    assert client.get_build_console_output("app", 1).endswith("Finished: FAILURE\n")
    assert [(b.job, b.number, b.parameters) for b in emulator.triggered_builds()] == [
        ("app", 1, {"BRANCH": "feature/x", "DEPLOY": "false"})
    ]


def test_queue_listing_and_build_parameters_find_who_asked(make_jenkins_emulator: Maker) -> None:
    """What a client can look for after a crash: the queue (`get_queue_info`) and the job's
    builds carry each request's parameters (ParametersAction) and the build its `queueId`."""
    emulator = make_jenkins_emulator(queue_delay=0.4, left_item_ttl=0.6)
    client = _client(emulator)
    client.create_job("app", PARAMETERIZED)
    first = client.build_job("app", {"BRANCH": "one"})
    [waiting] = client.get_queue_info()
    assert waiting["id"] == first and waiting["task"]["url"].endswith("/job/app/")
    [action] = [a for a in waiting["actions"] if a.get("_class") == "hudson.model.ParametersAction"]
    assert {p["name"]: p["value"] for p in action["parameters"]} == {
        "BRANCH": "one",
        "DEPLOY": "false",
    }
    assert {p["_class"] for p in action["parameters"]} == {"hudson.model.StringParameterValue"}
    deadline = time.monotonic() + 10
    while client.get_queue_info() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get_queue_item(first)["executable"]["number"] == 1  # a LeftItem, for a while
    tree = "builds[number,queueId,actions[parameters[name,value]]]"
    raw = client.jenkins_open(
        requests.Request("GET", f"{emulator.url}/job/app/api/json?tree={tree}")
    )
    [build] = json.loads(raw)["builds"]
    assert build["number"] == 1 and build["queueId"] == first
    params = [a for a in build["actions"] if a.get("_class") == "hudson.model.ParametersAction"]
    assert {p["name"]: p["value"] for p in params[0]["parameters"]}["BRANCH"] == "one"
    plain = client.get_job_info("app")["builds"]  # depth=0, no tree: references only
    assert plain == [
        {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "number": 1,
            "url": f"{emulator.url}/job/app/1/",
        }
    ]
    time.sleep(0.7)  # Queue.leftItems forgets an item 5 minutes after it left (here 0.6 s)
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        client.get_queue_item(first)


def test_build_on_parameterized_job_without_params_is_400(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_job("app", PARAMETERIZED)
    for params in (None, {}):  # {} is falsy and goes to /build
        with pytest.raises(requests.HTTPError) as info:
            jenkins_api.build_job("app", params)
        assert info.value.response.status_code == 400
        assert "Nothing is submitted" in info.value.response.text
    assert jenkins_emulator.triggered_builds() == []


def test_unparameterized_build_and_disabled_job(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_job("app", PIPELINE)
    assert jenkins_api.build_job("app") == 1
    jenkins_api.disable_job("app")
    assert "<disabled>true</disabled>" in jenkins_api.get_job_config("app")
    with pytest.raises(requests.HTTPError) as info:
        jenkins_api.build_job("app")
    assert info.value.response.status_code == 409
    assert len(jenkins_emulator.triggered_builds("app")) == 1


# ---------------------------------------------------------------------------- faults
def test_faults_and_latency(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_emulator.latency = 0.01
    jenkins_api.create_job("app", PIPELINE)
    jenkins_emulator.faults.error("GET", r"/job/app/config\.xml$", status=503)
    with pytest.raises(requests.HTTPError) as info:
        jenkins_api.get_job_config("app")
    assert info.value.response.status_code == 503
    jenkins_emulator.faults.drop("GET", r"/job/app/config\.xml$")
    with pytest.raises(requests.ConnectionError):
        jenkins_api.get_job_config("app")
    jenkins_emulator.faults.error("POST", r"/build$", status=500)
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        jenkins_api.build_job("app")
    assert jenkins_emulator.triggered_builds() == []
    assert jenkins_api.get_job_config("app").startswith("<?xml version='1.1'")


def test_lost_answer_still_queues_the_build(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_job("app", PARAMETERIZED)
    jenkins_emulator.faults.lose_answer("POST", r"/buildWithParameters$")
    with pytest.raises(requests.ConnectionError):
        jenkins_api.build_job("app", {"BRANCH": "x"})
    assert [b.parameters["BRANCH"] for b in jenkins_emulator.triggered_builds("app")] == ["x"]
    jenkins_emulator.faults.add("POST", r"/buildWithParameters$", hold=0.5)
    seen: list[int] = []
    worker = threading.Thread(
        target=lambda: seen.append(jenkins_api.build_job("app", {"BRANCH": "y"}))
    )
    worker.start()
    deadline = time.monotonic() + 5
    while len(jenkins_emulator.triggered_builds("app")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == []  # queued in Jenkins, the answer still held back
    worker.join(5)
    assert seen == [jenkins_emulator.triggered_builds("app")[1].queue_id]


def test_tree_query_is_unquoted(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_folder("team")
    jenkins_api.create_job("team/app", PIPELINE)
    response = requests.get(
        f"{jenkins_emulator.url}/job/team/api/json?tree=jobs%5Bname%2Curl%2C_class%5D",
        auth=(JENKINS_USER, JENKINS_API_TOKEN),
        timeout=10,
    )
    assert response.json() == {
        "_class": "com.cloudbees.hudson.plugins.folder.Folder",
        "jobs": [
            {
                "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                "name": "app",
                "url": f"{jenkins_emulator.url}/job/team/job/app/",
            }
        ],
    }


def test_concurrent_clients(jenkins_emulator: JenkinsEmulator) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            client = _client(jenkins_emulator)
            client.create_job(f"job-{n}", PIPELINE)
            for _ in range(3):
                client.build_job(f"job-{n}")
            client.get_all_jobs()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(jenkins_emulator.triggered_builds()) == 36
    assert sorted({b.queue_id for b in jenkins_emulator.triggered_builds()}) == list(range(1, 37))
