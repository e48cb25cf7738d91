"""Access: the app binds 127.0.0.1 by default, asks for a login with --auth and warns when it serves beyond this
machine without one; over HTTP it serves its thumbnails and none of the machine's other files; every folder and file
typed into it is read only under its data roots, `..` and symlinks judged by where they lead.

The real app (`python app.py --suite tiny --data-root INSIDE`) is driven by gradio_client and plain HTTP; the test
data are drawn shapes (tests/data/test_pairs.py), split between INSIDE and a sibling OUTSIDE folder.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
from bench.common.drawn_pairs import draw_image, write_generation
from bench.common.serve import ROOT, free_port, running_app
from synood.data import manifest as manifests
from ui import thumbnails
from synood.records import runs
from ui.access import ROOTS_VARIABLE, AccessError, DataRoots
from synood.config import cache_home

OUTSIDE_MESSAGE = ("{path}: outside the app's data roots ({roots}); start the app with --data-root DIR to allow "
                   "another folder")


# --- ui.access on its own ---------------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    """root/ (with a file, a sub-folder and links out of it and within it) and a sibling outside/ folder."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "a.png").write_bytes(b"inside")
    (outside / "secret.png").write_bytes(b"outside")
    os.symlink(outside, root / "folder-link")
    os.symlink(outside / "secret.png", root / "sub" / "file-link.png")
    os.symlink(root / "sub" / "a.png", root / "inner-link.png")
    return {"root": root, "outside": outside}


def test_paths_inside_a_root_resolve(tree):
    roots = DataRoots.of([tree["root"]])
    assert roots.check(str(tree["root"] / "sub")) == tree["root"] / "sub"
    assert roots.check(f"  {tree['root'] / 'sub' / '..' / 'sub' / 'a.png'}\n") == tree["root"] / "sub" / "a.png"
    assert roots.check(tree["root"] / "inner-link.png") == tree["root"] / "sub" / "a.png"  # a link that stays in
    assert roots.check(tree["root"] / "not-yet") == tree["root"] / "not-yet"  # need not exist: callers say so


def test_relative_and_home_paths_resolve(tree, monkeypatch):
    roots = DataRoots.of([tree["root"]])
    monkeypatch.chdir(tree["root"])
    assert roots.check("sub/a.png") == tree["root"] / "sub" / "a.png"
    monkeypatch.setenv("HOME", str(tree["root"]))
    assert roots.check("~/sub") == tree["root"] / "sub"
    with pytest.raises(AccessError, match=r"^\.\./outside \(that is "):
        roots.check("../outside")


@pytest.mark.parametrize("typed, leads_to", [
    ("outside", None),
    ("outside/secret.png", None),
    ("outside/missing.png", None),  # the same answer whether it exists or not
    ("root/../outside", "outside"),
    ("root/sub/../../outside/secret.png", "outside/secret.png"),
    ("root/folder-link", "outside"),
    ("root/folder-link/secret.png", "outside/secret.png"),
    ("root/sub/file-link.png", "outside/secret.png"),
    ("root2", None),  # a sibling whose name starts with the root's is not inside it
])
def test_paths_leading_outside_are_refused(tree, typed, leads_to):
    base = tree["root"].parent
    (base / "root2").mkdir(exist_ok=True)
    roots = DataRoots.of([tree["root"]])
    path = base / typed
    shown = str(path) if leads_to is None else f"{path} (that is {base / leads_to})"
    with pytest.raises(AccessError) as error:
        roots.check(str(path))
    assert str(error.value) == OUTSIDE_MESSAGE.format(path=shown, roots=tree["root"])
    assert not roots.contains(path)


def test_unusable_paths_and_roots_are_refused(tree):
    roots = DataRoots.of([tree["root"]])
    for text, message in (("", "no path given"), ("   ", "no path given"),
                          ("a\x00b", "'a\\x00b': not a usable path (embedded null byte)"),
                          ("~no-such-user/x", "'~no-such-user/x': not a usable path (Could not determine home "
                                              "directory.)")):
        with pytest.raises(AccessError) as error:
            roots.check(text)
        assert str(error.value) == message
    os.symlink(tree["root"] / "loop", tree["root"] / "loop")
    with pytest.raises(AccessError, match="loop'?: not a usable path"):
        roots.check(tree["root"] / "loop")
    assert not roots.contains(tree["root"] / "loop")
    with pytest.raises(AccessError, match="missing: a data root must be an existing folder"):
        DataRoots.of([tree["root"] / "missing"])
    with pytest.raises(AccessError, match="a.png: a data root must be an existing folder"):
        DataRoots.of([tree["root"] / "sub" / "a.png"])


def test_roots_resolve_and_come_from_flags_then_variable_then_working_directory(tree, monkeypatch):
    os.symlink(tree["root"], tree["root"].parent / "root-link")
    roots = DataRoots.of([tree["root"].parent / "root-link", tree["root"], tree["outside"]])
    assert roots.roots == (tree["root"], tree["outside"])  # resolved, each once
    assert roots.describe() == f"{tree['root']}, {tree['outside']}"
    assert DataRoots.of([tree["root"]]).check(tree["root"].parent / "root-link" / "sub") == tree["root"] / "sub"
    monkeypatch.chdir(tree["outside"])
    monkeypatch.setenv(ROOTS_VARIABLE, f"{tree['root']}{os.pathsep}{tree['outside']}")
    assert DataRoots.from_settings([str(tree["root"] / "sub")]).roots == (tree["root"] / "sub",)
    assert DataRoots.from_settings(None).roots == (tree["root"], tree["outside"])
    monkeypatch.delenv(ROOTS_VARIABLE)
    assert DataRoots.from_settings([]).roots == (tree["outside"],)
    extended = DataRoots.of([tree["root"]]).with_folder(tree["outside"] / "runs")  # need not exist
    assert extended.contains(tree["outside"] / "runs" / "x" / "detector.safetensors")


def test_files_found_inside_that_lead_outside_are_skipped_and_named(tree, monkeypatch):
    roots = DataRoots.of([tree["root"]])
    found = sorted(p for p in tree["root"].rglob("*.png"))
    assert roots.split(found) == ([tree["root"] / "inner-link.png", tree["root"] / "sub" / "a.png"],
                                  [tree["root"] / "sub" / "file-link.png"])
    root, outside = tree["root"], tree["outside"]
    monkeypatch.chdir(root / "sub")
    tricky = [root, root / "sub" / "..", root / "..", root / "folder-link" / "secret.png", root / ".." / "outside",
              root / "sub" / ".." / "sub" / "a.png", outside / "secret.png", "a.png", "../../outside/secret.png",
              "file-link.png", root / "loop.png", root / "folder-link" / ".." / "root" / "sub"]
    os.symlink(root / "loop.png", root / "loop.png")
    kept, _ = roots.split(tricky)
    assert kept == [Path(p) for p in tricky if roots.contains(p)]  # folder by folder, as contains judges
    assert kept == [root, root / "sub" / "..", root / "sub" / ".." / "sub" / "a.png", Path("a.png"),
                    root / "folder-link" / ".." / "root" / "sub"]  # the link first, then ".."


def test_pair_images_outside_are_never_opened(tree):
    outside = tree["outside"] / "real.png"
    draw_image(outside, 1, synthetic=False)
    tile = thumbnails.pair_image(outside, "source image", DataRoots.of([tree["root"]]).contains)
    assert tile.size == (512, 512) and tile.getpixel((2, 2)) == (156, 163, 175)  # the placeholder
    assert tile.tobytes() == thumbnails.placeholder("source image outside the data roots", (512, 512)).tobytes()


def test_feature_map_skips_and_names_folder_images_that_lead_outside(tree):
    from ui.featuremap_tab import gather

    for index in range(2):
        draw_image(tree["root"] / "id" / f"{index}.png", index, synthetic=False)
    draw_image(tree["outside"] / "real.png", 5, synthetic=False)
    os.symlink(tree["outside"] / "real.png", tree["root"] / "id" / "linked.png")
    chosen, notes, problems = gather(str(tree["root"] / "id"), "", "", 100, DataRoots.of([tree["root"]]))
    assert [source.path.name for source in chosen] == ["0.png", "1.png"] and notes == []
    assert problems == [f"{tree['root'] / 'id' / 'linked.png'}: leads outside the app's data roots"]
    with pytest.raises(AccessError, match="outside the app's data roots"):
        gather(str(tree["root"] / "folder-link"), "", "", 100, DataRoots.of([tree["root"]]))


@pytest.mark.parametrize("host, share, auth, warned", [
    ("127.0.0.1", False, None, False), ("localhost", False, None, False), ("::1", False, None, False),
    ("127.0.0.2", False, None, False), ("0.0.0.0", False, None, True), ("::", False, None, True),
    ("192.168.1.5", False, None, True), ("example.org", False, None, True), ("127.0.0.1", True, None, True),
    ("0.0.0.0", False, ("u", "p"), False), ("127.0.0.1", True, ("u", "p"), False)])
def test_the_exposure_warning(host, share, auth, warned):
    warning = app.exposure_warning(host, share, auth)
    assert (warning is not None) == warned
    if warned:
        assert warning == (f"WARNING: serving beyond this machine ({'share link' if share else host}) without "
                           "--auth: anyone who can reach it can use the app.")


# --- the real app ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def area(tmp_path_factory) -> dict[str, Path]:
    """INSIDE (the app's one data root) and OUTSIDE, with generations, image folders and links between them."""
    base = tmp_path_factory.mktemp("access")
    inside, outside = base / "inside", base / "outside"
    write_generation(inside / "gen", 4)
    write_generation(outside / "gen", 2)
    draw_image(outside / "secret.png", 99, synthetic=False)
    mixed = write_generation(inside / "mixed", 4)  # pair 1's source and pair 2's synthetic image lie outside
    records = [json.loads(line) for line in (mixed / manifests.MANIFEST).read_text().splitlines()]
    records[1]["source"] = str(outside / "secret.png")
    records[2]["image"] = "../../outside/secret.png"
    (mixed / manifests.MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in records))
    for index in range(3):
        draw_image(inside / "id" / f"{index}.png", index, synthetic=False)
    os.symlink(outside / "secret.png", inside / "id" / "linked.png")
    os.symlink(outside / "gen", inside / "gen-link")
    os.symlink(outside / "gen" / manifests.MANIFEST, inside / "manifest-link.jsonl")
    os.symlink(outside / "secret.png", inside / "detector-link.safetensors")
    return {"inside": inside, "outside": outside}


@pytest.fixture(scope="module")
def served(area, tmp_path_factory):
    with running_app("--suite", "tiny", "--data-root", str(area["inside"]), "--set", "images.max_file_mb=0.05",
                     log=tmp_path_factory.mktemp("access-app") / "app.log") as url:
        yield url


def outside_message(area, typed: str, leads_to: str | None = None) -> str:
    shown = typed if leads_to is None else f"{typed} (that is {leads_to})"
    return OUTSIDE_MESSAGE.format(path=shown, roots=area["inside"])


def status_of(url: str) -> int:
    """The HTTP status of a GET of `url` (sent as written: no `..` is folded away)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port`, from /proc/net/tcp and tcp6 (hex, as the kernel
    writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_parse_args_defaults_to_loopback():
    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.auth is None and not args.share and args.data_root is None
    assert app.parse_args(["--data-root", "a", "--data-root", "b"]).data_root == ["a", "b"]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_the_app_listens_on_loopback_only_by_default(served):
    port = int(served.rstrip("/").rsplit(":", 1)[1])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and no 0.0.0.0 or :: socket


def test_an_upload_over_the_size_limit_is_refused_before_it_is_stored(served, tmp_path):
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    Image.effect_noise((200, 200), 80).convert("RGB").save(big)  # about 120 KB of noise: over 0.05 MB
    Image.new("RGB", (32, 32), "orange").save(small)
    client = Client(served, verbose=False)
    with pytest.raises(Exception, match="big.png.*exceeds the maximum file size"):
        client.predict(handle_file(str(big)), 10, 0.01, api_name="/neglabel_score")
    client.predict(handle_file(str(small)), 10, 0.01, api_name="/neglabel_score")


def test_it_serves_its_thumbnails_and_no_other_file(served, area):
    client = Client(served, verbose=False)
    client.predict(str(area["inside"] / "gen"), "manifest", "ascending", 12, api_name="/pairs_load")
    inside = DataRoots.of([area["inside"]]).contains
    thumbnail = thumbnails.thumbnail_path(manifests.load_manifest(area["inside"] / "gen").pairs[0], inside=inside)
    assert thumbnail.is_file()  # made by the app, in this session's SYNOOD_HOME
    file = served + "gradio_api/file="
    with urllib.request.urlopen(file + str(thumbnail), timeout=30) as response:
        assert response.status == 200 and response.read(2) == b"\xff\xd8"
    home = cache_home()
    link = thumbnail.parent / "passwd.jpg"
    link.unlink(missing_ok=True)
    os.symlink("/etc/passwd", link)  # a link in the served folder is judged by where it leads
    refused = ["/etc/passwd", str(ROOT / "synood" / "config.py"), "synood/config.py", "app.py",
               str(home / "runs.sqlite"), f"{home}/thumbnails/../runs.sqlite", f"{home}/thumbnails/%2e%2e/runs.sqlite",
               str(area["inside"] / "gen" / manifests.MANIFEST), str(area["inside"] / "id" / "0.png"), str(link),
               f"{thumbnail}/../../../runs.sqlite"]
    assert (home / "runs.sqlite").is_file()
    assert {path: status_of(file + path) for path in refused} == {path: 403 for path in refused}
    assert status_of(served + "gradio_api/file//etc/passwd") == 403  # the older /file/ route


@pytest.mark.parametrize("typed, leads_to", [
    ("/etc", None),
    ("{inside}/gen/../../outside/gen", "{outside}/gen"),
    ("{inside}/gen-link", "{outside}/gen"),
    ("{inside}/manifest-link.jsonl", "{outside}/gen/manifest.jsonl"),
    ("{outside}/gen", None),
])
def test_pairs_tab_refuses_generations_outside_the_roots(served, area, typed, leads_to):
    typed, leads_to = (None if text is None else text.format(**area) for text in (typed, leads_to))
    with pytest.raises(Exception) as error:
        Client(served, verbose=False).predict(typed, "manifest", "ascending", 12, api_name="/pairs_load")
    assert str(error.value) == outside_message(area, typed, leads_to)


def test_pairs_tab_shows_manifest_images_outside_the_roots_as_placeholders(served, area):
    client = Client(served, verbose=False)
    _, _, _, _, gallery, where, *_ = client.predict(
        str(area["inside"] / "mixed"), "manifest", "ascending", 12, api_name="/pairs_load")
    assert len(gallery) == 4 and "4 pairs shown of 4" in where
    assert ("2 images on this page are outside the app's data roots and not shown (start the app with --data-root "
            "DIR to allow their folder)") in where
    manifest = manifests.load_manifest(area["inside"] / "mixed")
    source, synthetic, *_ = client.predict(manifest.pairs[1].id, api_name="/pairs_open")
    expected = thumbnails.placeholder("source image outside the data roots", (512, 512))
    assert Image.open(source).convert("RGB").tobytes() == expected.tobytes()
    assert Image.open(synthetic).size == (512, 512)  # pair 1's synthetic image is inside: shown
    source, synthetic, *_ = client.predict(manifest.pairs[2].id, api_name="/pairs_open")
    expected = thumbnails.placeholder("synthetic image outside the data roots", (512, 512))
    assert Image.open(synthetic).convert("RGB").tobytes() == expected.tobytes()


@pytest.mark.parametrize("inputs, message", [
    (dict(id_folder="/etc"), "/etc: outside the app's data roots ({inside})"),
    (dict(id_folder="{inside}/id/../../outside"), "{inside}/id/../../outside (that is {outside}): outside"),
    (dict(ood="{inside}/gen-link"), "{inside}/gen-link (that is {outside}/gen): outside the app's data roots"),
    (dict(generation="{inside}/manifest-link.jsonl"), "{inside}/manifest-link.jsonl (that is {outside}/gen/"),
    (dict(space="after", checkpoint="/etc/passwd"),
     "/etc/passwd: outside the app's data roots ({inside}, {home}/runs); start the app with --data-root DIR"),
    (dict(space="after", checkpoint="{inside}/detector-link.safetensors"),
     "{inside}/detector-link.safetensors (that is {outside}/secret.png): outside the app's data roots"),
])
def test_feature_map_refuses_paths_outside_the_roots(served, area, inputs, message):
    values = dict(id_folder=str(area["inside"] / "id"), generation="", ood="", checkpoint="", space="before")
    values.update({key: value.format(**area) for key, value in inputs.items()})
    job = Client(served, verbose=False).submit(values["id_folder"], values["generation"], values["ood"],
                                               values["checkpoint"], values["space"], "group", 100,
                                               api_name="/featuremap")
    job.result(timeout=120)
    (plot, status), = job.outputs()
    assert plot == {"__type__": "update"}  # the map on screen stays
    assert status.startswith("**No map:** ")
    assert message.format(home=cache_home(), **area) in status.replace("\\", "")


def test_finetune_tab_refuses_data_outside_the_roots(served, area):
    client = Client(served, verbose=False)
    settings = [0.001, 1, 8, 0.001, 1, 8, 0, "separate", False, "both", 0, 0, 0]
    with pytest.raises(Exception) as error:
        client.predict(str(area["inside"] / "gen-link"), *settings, api_name="/finetune_launch")
    assert str(error.value) == outside_message(area, str(area["inside"] / "gen-link"), str(area["outside"] / "gen"))
    mixed = area["inside"] / "mixed"
    with pytest.raises(Exception) as error:
        client.predict(str(mixed), *settings, api_name="/finetune_launch")
    assert str(error.value) == (
        f"{mixed / manifests.MANIFEST}: 2 of the 8 images it names are outside the app's data roots ({area['inside']}), "
        f"such as {area['outside'] / 'secret.png'}; start the app with --data-root DIR to allow their folder.")

    store = runs.store_for(cache_home())  # runs recorded by someone else (the CLI, say), shown to the app
    completed = store.create("finetune", {}, {"generation": str(area["inside"] / "gen")}, status="completed")
    store.update(completed.id, artifacts={"detector": str(area["inside"] / "no-detector.safetensors")})
    with pytest.raises(Exception) as error:
        client.predict(completed.id, str(area["inside"] / "id"), "/etc", api_name="/finetune_evaluate")
    assert str(error.value) == (
        f"{area['inside'] / 'id'}: 1 of its 4 image files lead outside the app's data roots ({area['inside']}), "
        f"such as {area['inside'] / 'id' / 'linked.png'}; remove those links or start the app with --data-root DIR "
        "to allow their folder.")
    (area["inside"] / "ood").mkdir(exist_ok=True)
    with pytest.raises(Exception) as error:
        client.predict(completed.id, str(area["inside"] / "ood"), "/etc", api_name="/finetune_evaluate")
    assert str(error.value) == outside_message(area, "/etc")
    stopped = store.create("finetune", {}, {"generation": str(area["outside"] / "gen")}, status="stopped")
    with pytest.raises(Exception) as error:
        client.predict(stopped.id, api_name="/finetune_resume")
    assert str(error.value) == outside_message(area, str(area["outside"] / "gen"))


def test_auth_demands_a_login(tmp_path):
    with running_app("--suite", "tiny", "--auth", "tester:s3cret-pass", log=tmp_path / "app.log") as url:
        with pytest.raises(Exception, match="credentials were not provided"):
            Client(url, verbose=False)
        with pytest.raises(Exception, match="Could not login"):
            Client(url, verbose=False, auth=("tester", "wrong"))
        client = Client(url, verbose=False, auth=("tester", "s3cret-pass"))
        assert isinstance(client.predict(api_name="/finetune_runs"), dict)
        assert status_of(url + "config") == 401
        assert status_of(url + "gradio_api/info") == 401
        assert status_of(url + "gradio_api/file=/etc/passwd") == 401
    assert "WARNING: serving beyond" not in (tmp_path / "app.log").read_text()


@pytest.mark.parametrize("auth, warned", [([], True), (["--auth", "tester:s3cret-pass"], False)])
def test_serving_beyond_this_machine_without_auth_warns(tmp_path, auth, warned):
    port = free_port()
    with socket.socket() as taken:  # the port is taken, so the app stops right after the warning and building the UI
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        result = subprocess.run([sys.executable, str(ROOT / "app.py"), "--suite", "tiny", "--host", "0.0.0.0",
                                 "--port", str(port), *auth], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=300)
    assert result.returncode == 2
    warning = ("WARNING: serving beyond this machine (0.0.0.0) without --auth: anyone who can reach it can use "
               "the app.")
    assert (warning in result.stderr) == warned
    assert f"app.py: error: cannot serve on 0.0.0.0:{port}: Cannot find empty port" in result.stderr
    assert (f"Data roots (folders and files typed into the app must lie under these): {os.environ[ROOTS_VARIABLE]}"
            in result.stdout)


def test_a_data_root_that_is_not_a_folder_stops_the_app(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "--suite", "tiny", "--data-root",
                             str(tmp_path / "missing")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip() == f"app.py: error: {tmp_path / 'missing'}: a data root must be an existing folder"
