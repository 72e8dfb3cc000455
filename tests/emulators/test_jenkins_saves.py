"""The Jenkins emulator stores jobs the way Jenkins does (jenkins.md "Stored config.xml is not
byte-stable"), runs gitlab-plugin's webhook handling, and saves a job on its first Declarative run.

Written from the reference and the plugins' source before conveyor's renderer was changed to meet it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jenkins

from tests.emulators.gitlab_plugin import post_hook
from tests.emulators.jenkins import JenkinsEmulator
from tests.emulators.jenkins_model import DECLARATIVE_JOB_ACTION, TRACKER_ACTION

TRIGGER = "com.dabsquared.gitlabjenkins.GitLabPushTrigger"
CONNECTION = "com.dabsquared.gitlabjenkins.connection.GitLabConnectionProperty"


def _job(trigger: str = "", properties: str = "", script: str = "echo 'x'") -> str:
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<flow-definition plugin="workflow-job">
  <description>demo</description>
  <properties>
    {properties}
    <org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>
      <triggers>{trigger}</triggers>
    </org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>
  </properties>
  <definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition">
    <script>{script}</script>
    <sandbox>true</sandbox>
  </definition>
</flow-definition>"""


def _root(client: jenkins.Jenkins, job: str) -> ET.Element:
    stored: str = client.get_job_config(job)
    return ET.fromstring(stored.split("?>", 1)[1].encode())


def _push(url: str, job: str, branch: str = "main", token: str | None = None) -> int:
    payload = {
        "object_kind": "push",
        "ref": f"refs/heads/{branch}",
        "before": "1" * 40,
        "after": "2" * 40,
        "commits": [{"id": "2" * 40, "message": "change"}],
        "project": {"path_with_namespace": "demo/app"},
        "repository": {
            "url": "git@gitlab:demo/app.git",
            "git_http_url": "http://gitlab/demo/app.git",
        },
    }
    return post_hook(url, job, "Push Hook", payload, token)


# ---------------------------------------------------------------------------------- (a) <spec>
def test_a_trigger_without_spec_is_dropped_when_the_job_loads(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    bare = f"<{TRIGGER}><triggerOnPush>true</triggerOnPush></{TRIGGER}>"
    jenkins_api.create_job("app", _job(bare))
    assert _root(jenkins_api, "app").find(f".//{TRIGGER}") is None
    assert "NullPointerException" in jenkins_emulator.item("app").old_data[0]
    # nothing ever builds: gitlab-plugin finds no trigger on the job and answers 200
    assert _push(jenkins_emulator.url, "app") == 200
    assert jenkins_emulator.triggered_builds("app") == []
    assert jenkins_emulator.hook_outcomes[-1].reason == "the job has no GitLabPushTrigger"
    # the same on POST config.xml; with <spec></spec> (even empty) the trigger survives
    jenkins_api.reconfig_job("app", _job(bare))
    assert _root(jenkins_api, "app").find(f".//{TRIGGER}") is None
    with_spec = f"<{TRIGGER}><spec></spec><triggerOnPush>true</triggerOnPush></{TRIGGER}>"
    jenkins_api.reconfig_job("app", _job(with_spec))
    assert _root(jenkins_api, "app").find(f".//{TRIGGER}") is not None
    assert jenkins_emulator.item("app").old_data == []
    assert _push(jenkins_emulator.url, "app") == 200
    assert len(jenkins_emulator.triggered_builds("app")) == 1


# ---------------------------------------------------------------------------------- (b) re-save
def test_b_post_stores_the_object_model_with_the_plugins_defaults(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    trigger = (
        f"<{TRIGGER}><spec></spec><triggerOnPush>true</triggerOnPush>"
        f"<secretToken>s3cret</secretToken><noSuchField>x</noSuchField></{TRIGGER}>"
    )
    properties = f"""
    <{CONNECTION}><gitLabConnection>gitlab</gitLabConnection></{CONNECTION}>
    <jenkins.model.BuildDiscarderProperty>
      <strategy class="hudson.tasks.LogRotator">
        <daysToKeep>-1</daysToKeep><numToKeep>5</numToKeep>
      </strategy>
    </jenkins.model.BuildDiscarderProperty>
    <hudson.model.ParametersDefinitionProperty><parameterDefinitions>
      <hudson.model.ChoiceParameterDefinition>
        <name>ENV</name>
        <choices class="java.util.Arrays$ArrayList"><a class="string-array">
          <string>dev</string><string>prod</string></a></choices>
      </hudson.model.ChoiceParameterDefinition>
    </parameterDefinitions></hudson.model.ParametersDefinitionProperty>"""
    jenkins_api.create_job("app", _job(trigger, properties))
    stored = jenkins_api.get_job_config("app")
    assert stored.startswith("<?xml version='1.1' encoding='UTF-8'?>")
    root = _root(jenkins_api, "app")
    assert (root.find(f".//{CONNECTION}").get("plugin") or "").startswith("gitlab-plugin@")  # type: ignore[union-attr]
    connection = root.find(f".//{CONNECTION}")
    assert connection is not None
    assert [c.tag for c in connection] == [
        "gitLabConnection",
        "jobCredentialId",
        "useAlternativeCredential",
    ]
    assert connection.findtext("useAlternativeCredential") == "false"
    rotator = root.find(".//strategy")
    assert rotator is not None and rotator.findtext("removeLastBuild") == "false"
    assert rotator.find("artifactNumToKeep") is None  # an Integer: null is not written
    choices = root.find(".//choices")
    assert choices is not None and choices.get("class") == "java.util.Arrays$ArrayList"
    t = root.find(f".//{TRIGGER}")
    assert t is not None
    # XStream ran no initialisers: absent booleans are Java's false (ciSkip's initialiser is true)
    assert t.findtext("ciSkip") == "false" and t.findtext("triggerOnMergeRequest") == "false"
    assert t.find("noteRegex") is None  # a String: null is not written
    assert t.find("noSuchField") is None  # unknown field dropped, recorded
    assert any("noSuchField" in e for e in jenkins_emulator.item("app").old_data)
    assert (t.findtext("secretToken") or "").startswith("{AQAAAB") and "s3cret" not in stored


def test_b_post_onto_the_job_keeps_fields_it_leaves_out(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    jenkins_api.create_job("app", _job(script="pipeline { agent any\n stages { } }"))
    jenkins_api.build_job("app")
    assert _root(jenkins_api, "app").find(f"actions/{TRACKER_ACTION}") is not None
    # a POST without <actions> leaves the job's actions alone (unmarshal onto `this`)
    jenkins_api.reconfig_job("app", _job(script="pipeline { agent any\n stages { } }"))
    assert _root(jenkins_api, "app").find(f"actions/{TRACKER_ACTION}") is not None
    # one with <actions/> empties them
    with_actions = _job(script="x").replace("<description>", "<actions/><description>")
    jenkins_api.reconfig_job("app", with_actions)
    assert _root(jenkins_api, "app").find(f"actions/{TRACKER_ACTION}") is None


# ---------------------------------------------------------------------------------- (c) first run
DECLARATIVE = """pipeline {
    agent any
    options {
        timeout(time: 10, unit: 'MINUTES')
        buildDiscarder(logRotator(numToKeepStr: '7'))
        gitLabConnection('gitlab')
    }
    parameters {
        string(name: 'GREETING', defaultValue: 'hi', description: 'say', trim: false)
        booleanParam(name: 'DEPLOY', defaultValue: true, description: '')
    }
    stages { stage('a') { steps { sh 'echo "}" {' } } }
}
"""


def test_c_first_declarative_run_saves_actions_and_rewritten_properties(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    properties = """
    <hudson.model.ParametersDefinitionProperty><parameterDefinitions>
      <hudson.model.StringParameterDefinition>
        <name>GREETING</name><description>say</description><defaultValue>hello</defaultValue>
      </hudson.model.StringParameterDefinition>
      <hudson.model.StringParameterDefinition><name>EXTRA</name></hudson.model.StringParameterDefinition>
    </parameterDefinitions></hudson.model.ParametersDefinitionProperty>"""
    script = DECLARATIVE.replace("&", "&amp;").replace("<", "&lt;")
    jenkins_api.create_job("app", _job(properties=properties, script=script))
    before = jenkins_api.get_job_config("app")
    assert TRACKER_ACTION not in before
    jenkins_api.build_job("app", {"GREETING": "x"})
    root = _root(jenkins_api, "app")
    actions = root.find("actions")
    assert actions is not None
    assert [a.tag for a in actions] == [DECLARATIVE_JOB_ACTION, TRACKER_ACTION]
    tracker = actions.find(TRACKER_ACTION)
    assert tracker is not None
    assert [s.text for s in tracker.iter("string")] == [
        "com.dabsquared.gitlabjenkins.connection.GitLabConnectionProperty",
        "jenkins.model.BuildDiscarderProperty",
        "DEPLOY",
        "GREETING",
    ]
    # the Jenkinsfile's parameters first, then EXTRA (not declared by a previous Jenkinsfile)
    names = [p.findtext("name") for p in root.iter() if p.tag.endswith("ParameterDefinition")]
    assert names == ["GREETING", "DEPLOY", "EXTRA"]
    greeting = root.find(".//hudson.model.StringParameterDefinition")
    assert greeting is not None and greeting.findtext("defaultValue") == "hi"
    deploy = root.find(".//hudson.model.BooleanParameterDefinition")
    assert deploy is not None and deploy.find("description") is None  # fixEmpty('') -> null
    assert root.findtext(".//strategy/numToKeep") == "7"
    assert root.find(f".//{CONNECTION}") is not None
    # a second run declares the same: the job is not saved again
    saved = jenkins_api.get_job_config("app")
    jenkins_api.build_job("app", {"GREETING": "x"})
    assert jenkins_api.get_job_config("app") == saved
    # a later Jenkinsfile that drops GREETING removes it (declared before), EXTRA stays
    jenkins_api.reconfig_job(
        "app",
        saved.replace(
            "string(name: &apos;GREETING&apos;, defaultValue: &apos;hi&apos;, "
            "description: &apos;say&apos;, trim: false)",
            "",
        ),
    )
    jenkins_api.build_job("app", {"DEPLOY": "true"})
    root = _root(jenkins_api, "app")
    names = [p.findtext("name") for p in root.iter() if p.tag.endswith("ParameterDefinition")]
    assert names == ["DEPLOY", "EXTRA"]


def test_c_scripted_pipelines_and_unknown_scm_files_do_not_save(
    jenkins_api: jenkins.Jenkins,
) -> None:
    jenkins_api.create_job("app", _job(script="node { echo 'x' }"))
    before = jenkins_api.get_job_config("app")
    jenkins_api.build_job("app")
    assert jenkins_api.get_job_config("app") == before


# ---------------------------------------------------------------------------------- gitlab-plugin
def test_build_parameters_override_gitlab_plugin_variables(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    trigger = f"<{TRIGGER}><spec></spec><triggerOnPush>true</triggerOnPush></{TRIGGER}>"
    params = """<hudson.model.ParametersDefinitionProperty><parameterDefinitions>
      <hudson.model.StringParameterDefinition><name>gitlabBranch</name><defaultValue></defaultValue>
      </hudson.model.StringParameterDefinition></parameterDefinitions>
      </hudson.model.ParametersDefinitionProperty>"""
    jenkins_api.create_job("declares", _job(trigger, params))
    jenkins_api.create_job("plain", _job(trigger))
    for job in ("declares", "plain"):
        assert _push(jenkins_emulator.url, job, branch="feature/x") == 200
    # Run.java:2416 applies parameters after the cause's variables; ParameterizedJobMixIn.java:167
    # gives a webhook build the defaults
    assert jenkins_emulator.triggered_builds("declares")[0].environment["gitlabBranch"] == ""
    plain = jenkins_emulator.triggered_builds("plain")[0].environment
    assert plain["gitlabBranch"] == "feature/x" and plain["gitlabActionType"] == "PUSH"


def test_secret_token_is_checked(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    trigger = (
        f"<{TRIGGER}><spec></spec><triggerOnPush>true</triggerOnPush>"
        f"<secretToken>tok</secretToken></{TRIGGER}>"
    )
    jenkins_api.create_job("app", _job(trigger))
    assert _push(jenkins_emulator.url, "app", token="wrong") == 401
    assert _push(jenkins_emulator.url, "app") == 401
    assert _push(jenkins_emulator.url, "app", token="tok") == 200
    assert len(jenkins_emulator.triggered_builds("app")) == 1


def test_merge_request_handler_rules(
    jenkins_api: jenkins.Jenkins, jenkins_emulator: JenkinsEmulator
) -> None:
    """MergeRequestHookTriggerHandlerFactory.java:34-49 and MergeRequestHookTriggerHandlerImpl.java."""
    trigger = (
        f"<{TRIGGER}><spec></spec><triggerOnMergeRequest>true</triggerOnMergeRequest>"
        f"<triggerOpenMergeRequestOnPush>never</triggerOpenMergeRequestOnPush></{TRIGGER}>"
    )
    jenkins_api.create_job("app", _job(trigger))

    def post(action: str, sha: str, **attrs: object) -> bool:
        payload = {
            "object_kind": "merge_request",
            "object_attributes": {
                "action": action,
                "state": "opened",
                "source_branch": "f",
                "target_branch": "main",
                "last_commit": {"id": sha, "message": "m"},
                **attrs,
            },
        }
        before = len(jenkins_emulator.triggered_builds("app"))
        assert post_hook(jenkins_emulator.url, "app", "Merge Request Hook", payload) == 200
        return len(jenkins_emulator.triggered_builds("app")) > before

    assert post("open", "1" * 40)
    assert not post("update", "2" * 40, oldrev="3" * 40)  # `never` rejects update
    assert not post("approved", "4" * 40)  # approved is rejected unless configured
    # a commit already built: reopen is skipped, open is not (skipBuiltYetCheckActions)
    jenkins_emulator.built_commits.add(("app", "5" * 40))
    assert not post("reopen", "5" * 40)
    assert post("open", "5" * 40)
    env = jenkins_emulator.triggered_builds("app")[-1].environment
    assert env["gitlabActionType"] == "MERGE" and env["gitlabMergeRequestLastCommit"] == "5" * 40


def test_declarations_read_like_groovy() -> None:
    from tests.emulators.jenkins_model import Call, block, statements

    script = (
        "pipeline {\n  options { timestamps(); buildDiscarder logRotator(numToKeepStr: '3') }\n"
        "  parameters {\n    string(name: 'A;B', defaultValue: 'x}y', description: '''multi\n"
        "line''', trim: true)\n  }\n}\n"
    )
    options = statements(block(script, "options") or "")
    assert [c.name for c in options] == ["timestamps", "buildDiscarder"]
    assert options[1].args == (Call("logRotator", (), {"numToKeepStr": "3"}),)
    (param,) = statements(block(script, "parameters") or "")
    assert param.kwargs == {
        "name": "A;B",
        "defaultValue": "x}y",
        "description": "multi\nline",
        "trim": True,
    }
