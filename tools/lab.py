"""JupyterLab as students meet it, started cleanly: for the live-notebook test and its screenshot.

:func:`running_lab` starts ``jupyter-lab`` from the project's venv on a free local port with no
token, no browser, and every per-user directory (runtime, config, data, settings, workspaces,
IPython profile) in a temporary folder, so nothing of the machine's own Jupyter set-up leaks in:
the kernel is the venv's ``python3`` spec, with the pinned numeric settings that
``tools/numerics.py --pin-kernel`` wrote into it (``make venv`` does). The notebook setting
``windowingMode`` is ``"none"`` (every cell stays in the page, so a test can find it) and
JupyterLab's news and update checks are off (no request leaves the machine).

``make lab`` is the same server for a person: ``jupyter-lab chapters`` with the venv's kernel
first on ``JUPYTER_PATH`` (see the Makefile).

Usage: ``python tools/lab.py screenshot [OUT.png]`` opens chapter 1 in JupyterLab, runs all its
cells, moves one slider and saves a screenshot with quoted numbers and the widget in view
(``make screenshots``; default ``screenshots/lab-01_fundamental_question.png``).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# user settings of the temporary profile: {plugin id: settings}
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}

# Run in the page: the state of the notebook open in the main area (needs expose_app_in_browser)
STATE_JS = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    if (!panel || !panel.content || !panel.sessionContext) return null;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.widgets;
    const code = cells.filter(c => c.model.type === 'code' && c.model.sharedModel.getSource().trim());
    const outputs = code.flatMap(c => c.model.outputs.toJSON());
    return {
        kernel: kernel ? kernel.status : 'none',
        code: code.length,
        unrun: code.filter(c => c.model.executionCount === null).length,
        busy: code.filter(c => (c.node.querySelector('.jp-InputPrompt') || {}).textContent
                                 ?.includes('*')).length,
        errors: outputs.filter(o => o.output_type === 'error')
                       .map(o => o.ename + ': ' + o.evalue),
    };
}"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_env(home):
    """Environment of a clean JupyterLab whose per-user folders are all under ``home``."""
    home = Path(home)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "IPYTHON")) and k not in ("MPLBACKEND",
                                                                      "CURVBOOK_QUOTES_STRICT")}
    dirs = {"JUPYTER_RUNTIME_DIR": "runtime", "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data", "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "IPYTHONDIR": "ipython"}
    for name, sub in dirs.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / sub)
    env["JUPYTER_PATH"] = str(VENV / "share" / "jupyter")  # the project's kernel comes first
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    for plugin, values in SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        path = home / "settings" / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return env


@contextlib.contextmanager
def running_lab(root, *, timeout=180):
    """Start JupyterLab serving ``root``; yields its base URL (``http://127.0.0.1:PORT/``)."""
    lab = VENV / "bin" / "jupyter-lab"
    if not lab.exists():
        raise FileNotFoundError(f"{lab} missing: run `make venv` (JupyterLab is in "
                                "requirements.txt)")
    with tempfile.TemporaryDirectory(prefix="curvlib-lab-") as home:
        port = free_port()
        cmd = [str(lab), "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", "--IdentityProvider.token=",
               "--ServerApp.password=", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI and these machines run as root
        log = open(Path(home) / "lab.log", "w")
        proc = subprocess.Popen(cmd, env=lab_env(home), cwd=root, stdout=log,
                                stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("JupyterLab exited:\n"
                                       + (Path(home) / "lab.log").read_text()[-3000:])
                try:
                    with urllib.request.urlopen(base + "api/status", timeout=5) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"JupyterLab did not answer on {base} in {timeout} s")
                time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def copy_chapters(dest):
    """A scratch copy of ``chapters/`` (JupyterLab saves and the kernel writes results)."""
    shutil.copytree(ROOT / "chapters", dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return Path(dest)


def open_notebook(page, base, name, timeout=120_000):
    """Open ``name`` in JupyterLab and wait until its kernel is idle."""
    page.goto(f"{base}lab/tree/{name}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-MarkdownCell", timeout=timeout)
    page.wait_for_function(f"() => {{ const s = ({STATE_JS})(); return s && s.kernel === 'idle'; }}",
                           timeout=timeout, polling=500)


def run_all(page, timeout=600_000):
    """Run > Run All Cells from the menu bar; wait until every code cell has run."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
    page.wait_for_function(
        f"() => {{ const s = ({STATE_JS})(); return s && (s.errors.length || "
        f"(s.kernel === 'idle' && s.unrun === 0 && s.busy === 0)); }}",
        timeout=timeout, polling=1000)
    return page.evaluate(STATE_JS)


def slider_and_image(page, index=0):
    """The ``index``-th live Explorer's first slider handle and its figure."""
    box = page.locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.locator(".widget-hslider")).filter(has=page.locator("img")).nth(index)
    return box.locator(".widget-hslider .noUi-handle").first, box.locator("img").first


def move_slider(page, handle, image, timeout=60_000):
    """Move a slider one step with the keyboard, as a reader would; returns (before, after)
    of the figure's ``src``."""
    handle.scroll_into_view_if_needed()
    before = image.get_attribute("src")
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                           arg=[image.element_handle(), before], timeout=timeout)
    return before, image.get_attribute("src")


def screenshot(out, chapter="01_fundamental_question.ipynb"):
    from playwright.sync_api import sync_playwright

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        root = copy_chapters(Path(tmp) / "chapters")
        with running_lab(root) as base:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            open_notebook(page, base, chapter)
            state = run_all(page)
            if state["errors"]:
                sys.exit(f"{chapter} raised in JupyterLab: {state['errors']}")
            handle, image = slider_and_image(page)
            move_slider(page, handle, image)
            # the widget at the bottom of the view, the prose with its numbers above it
            image.evaluate("el => el.scrollIntoView({block: 'end'})")
            page.wait_for_timeout(500)
            page.screenshot(path=str(out))
            browser.close()
    print(f"saved {out}")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["screenshot"]:
        sys.exit(__doc__)
    screenshot(argv[1] if len(argv) > 1 else
               ROOT / "screenshots" / "lab-01_fundamental_question.png")


if __name__ == "__main__":
    main()
