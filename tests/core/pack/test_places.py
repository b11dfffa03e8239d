"""ion's own apps, releases and config travel in the package; the user's come first."""

from __future__ import annotations

from pathlib import Path

from ion.core.config import Config, config_layers
from ion.core.pack.places import APPS, CONFIG, RELEASES, find_named, package_dir, search_dirs


def test_the_package_holds_ions_own_files():
    assert (package_dir(APPS) / "ioncore.app").is_file()
    assert (package_dir(RELEASES) / "hello.rel").is_file()
    assert (package_dir(RELEASES) / "demo.rel").is_file()
    assert (package_dir(CONFIG) / "ion.yml").is_file()
    assert package_dir(APPS).parent.parent.name == "ion"


def test_user_directories_come_first_and_the_package_last(tmp_path: Path):
    dirs = search_dirs(["res/apps", "more"], tmp_path, APPS)
    assert dirs == [tmp_path / "res/apps", tmp_path / "more", package_dir(APPS)]


def test_the_package_directory_is_not_searched_twice():
    own = package_dir(APPS)
    assert search_dirs([own], Path("/"), APPS) == [own]


def test_a_bare_release_name_is_the_users_before_ions(tmp_path: Path):
    config = Config({"pack": {"root": str(tmp_path)}})
    assert find_named("hello.rel", config) == package_dir(RELEASES) / "hello.rel"
    mine = tmp_path / "res/deploy/hello.rel"
    mine.parent.mkdir(parents=True)
    mine.write_text("type: release\nname: hello\nversion: '1'\napps: []\n")
    assert find_named("hello.rel", config) == mine
    assert find_named("ioncore.app", config) == package_dir(APPS) / "ioncore.app"


def test_only_bare_names_are_looked_up(tmp_path: Path):
    config = Config({"pack": {"root": str(tmp_path)}})
    assert find_named("deploy/hello.rel", config) is None
    assert find_named("nosuch.rel", config) is None
    assert find_named("boot.py", config) is None


def test_ion_yml_defaults_load_where_there_is_no_res(tmp_path: Path):
    layers = dict(config_layers(root=tmp_path, environ={}))
    assert layers["ion.yml"]["container"]["rpc_timeout"] == 15.0
