"""ConfigSet: configs by source name, reloaded when their files change."""

from __future__ import annotations

import json
import os

import pytest

from workbench.config import ConfigSet
from workbench.errors import ConfigError, NotFound


def write(path, raw, bump=0):
    path.write_text(json.dumps(raw))
    if bump:  # make sure the change shows in the file's mtime even on coarse clocks
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump))


def test_configs_by_source_and_environment(config_path):
    configs = ConfigSet([config_path])
    config, env = configs.environment("clay", "dedupe")
    assert (config.source, env.name) == ("clay", "dedupe")
    with pytest.raises(NotFound, match=r"no source `other` is configured on this receiver \(known: clay\)"):
        configs.get("other")
    with pytest.raises(NotFound, match=r"has no environment `prod` \(it has: development, dedupe, knock\)"):
        configs.environment("clay", "prod")


def test_edited_file_is_reloaded(config_path):
    configs = ConfigSet([config_path])
    raw = json.loads(config_path.read_text())
    raw["environments"]["development"]["mappings"] = raw["environments"]["development"]["mappings"][:1]
    write(config_path, raw, bump=10**9)
    configs.reload_if_changed()
    assert len(configs.environment("clay", "development")[1].mappings) == 1


def test_broken_edit_keeps_the_last_good_config(config_path, caplog):
    configs = ConfigSet([config_path])
    before = configs.get("clay")
    config_path.write_text('{"source": "clay", "environments": ')
    configs.reload_if_changed()
    assert configs.get("clay") is before
    assert "keeping the previous config" in caplog.text


def test_two_files_for_one_source_are_refused(config_path, tmp_path):
    copy = tmp_path / "copy.json"
    copy.write_text(config_path.read_text())
    with pytest.raises(ConfigError, match="configured twice"):
        ConfigSet([config_path, copy])


def test_several_sources(config_path, tmp_path):
    raw = json.loads(config_path.read_text())
    raw["source"] = "clay-eu"
    other = tmp_path / "eu.json"
    write(other, raw)
    configs = ConfigSet([config_path, other])
    assert sorted(c.source for c in configs) == ["clay", "clay-eu"]
