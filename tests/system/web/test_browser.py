"""The page, end to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
against real web and worker processes.

Screenshots of each state land in tests/artifacts/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium under Playwright; never a downloaded browser."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A desktop-sized page; console errors from our own script fail the test at teardown."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The pages run under a Content-Security-Policy without inline script: a violation is a bug.
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=str(path))
    return path


def throttle_upload(page, bytes_per_s: int | None) -> None:
    """Slow the browser's upload (DevTools network emulation) so the upload state can be seen."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": bytes_per_s if bytes_per_s else -1,
    })


def watch_job_statuses(page) -> None:
    """Record every status a job row shows, so the test can see it went through to done."""
    page.evaluate("""() => {
        window.__statuses = [];
        new MutationObserver((records) => {
            for (const r of records) {
                const status = r.target.dataset && r.target.dataset.status;
                if (r.target.classList && r.target.classList.contains('job') && status
                    && window.__statuses[window.__statuses.length - 1] !== status) window.__statuses.push(status);
            }
        }).observe(document.querySelector('#jobs'), {subtree: true, childList: true, attributes: true,
                                                     attributeFilter: ['data-status']});
    }""")


def parse_srt(text: str) -> list[tuple[int, int, str]]:
    cues = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.strip().splitlines()
        assert lines[0].strip().isdigit(), block
        match = re.fullmatch(rf"{SRT_TIME} --> {SRT_TIME}", lines[1].strip())
        assert match, lines[1]
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
        start = ((h1 * 60 + m1) * 60 + s1) * 1000 + ms1
        end = ((h2 * 60 + m2) * 60 + s2) * 1000 + ms2
        cues.append((start, end, " ".join(lines[2:])))
    return cues


def words_only(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def test_upload_watch_read_replay_download(live_service, page, speech_path):
    service = live_service()
    base = service.base_url
    page.goto(base + "/")
    assert page.title().startswith("tingxie")
    page.locator("#jobs-empty").wait_for(state="visible")  # the list loaded, and it is empty
    watch_job_statuses(page)
    pushed: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: pushed.append(str(frame))))

    # Upload through the file chooser, slowed down so that the per-file progress is visible.
    throttle_upload(page, 250_000)
    page.set_input_files("#file-input", str(speech_path("jfk.flac")))
    upload = page.locator("#uploads .upload")
    page.wait_for_function(
        "() => /\\/s/.test(document.querySelector('#uploads .upload .item-progress-text')?.textContent || '')")
    text = upload.locator(".item-progress-text").inner_text()
    assert re.search(r"of 1\.\d MB · \d+(\.\d)? KB/s · .*left", text), text
    assert int(upload.locator('[role="progressbar"]').get_attribute("aria-valuenow")) < 100
    shot(page, "1-upload")
    throttle_upload(page, None)

    # The job row appears and updates live until done.
    job = page.locator("#jobs .job").first
    job.wait_for()
    upload.wait_for(state="detached")
    assert job.locator(".job-open").inner_text() == "jfk.flac"
    page.wait_for_function("() => ['running', 'done'].some((s) => window.__statuses.includes(s))", timeout=300_000)
    shot(page, "2-progress")
    page.wait_for_selector('#jobs .job[data-status="done"]', timeout=300_000)
    statuses = page.evaluate("window.__statuses")
    assert statuses[0] == "queued" and statuses[-1] == "done", statuses
    assert "11 s audio" in job.inner_text()
    # The live list used the job event push, not only polling.
    assert any('"type": "snapshot"' in frame for frame in pushed), pushed[:3]

    # The transcript: sentences with times, the player, the words.
    job.locator(".job-open").click()
    page.wait_for_selector("#transcript .w")
    job_id = page.evaluate("location.hash").rsplit("/", 1)[-1]
    transcript = requests.get(f"{base}/api/v1/jobs/{job_id}/transcript", params={"format": "json"}, timeout=10).json()
    shown = page.locator("#transcript").inner_text()
    assert "ask not what your country can do for you" in words_only(shown)
    assert page.locator("#transcript .seg").count() == len(transcript["segments"])
    assert page.locator("#viewer-title").inner_text() == "jfk.flac"
    page.wait_for_function("() => document.querySelector('#player audio').readyState >= 1")

    # Click a word: the player jumps to that word's start and the word is highlighted.
    words = [w for seg in transcript["segments"] for w in seg["words"]]
    target_index = max(range(len(words)), key=lambda i: words[i]["end_ms"] - words[i]["start_ms"])
    target = page.locator("#transcript .w").nth(target_index)
    assert target.inner_text().strip() == words[target_index]["text"].strip()
    target.click()
    current_s = page.evaluate("() => { const a = document.querySelector('#player audio'); a.pause(); return a.currentTime; }")
    start_s = words[target_index]["start_ms"] / 1000
    assert start_s - 0.01 <= current_s <= start_s + 0.5, (current_s, start_s)
    page.evaluate(f"() => {{ document.querySelector('#player audio').currentTime = {start_s + 0.01}; }}")
    page.wait_for_function(f"() => document.querySelectorAll('#transcript .w')[{target_index}].classList.contains('now')")
    assert page.locator("#transcript .seg.active").count() == 1
    shot(page, "3-transcript")

    # Keyboard: a sentence's time button seeks to the sentence start.
    page.evaluate("() => { const a = document.querySelector('#player audio'); a.currentTime = 5; }")
    page.locator("#transcript .seg-time").first.focus()
    page.keyboard.press("Enter")
    current_s = page.evaluate("() => { const a = document.querySelector('#player audio'); a.pause(); return a.currentTime; }")
    assert transcript["segments"][0]["start_ms"] / 1000 - 0.01 <= current_s <= transcript["segments"][0]["start_ms"] / 1000 + 0.5

    # Keyboard: arrows walk from the sentence button into its words, Enter plays from the word.
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.i") == "2"
    page.keyboard.press("Enter")
    current_s = page.evaluate("() => { const a = document.querySelector('#player audio'); a.pause(); return a.currentTime; }")
    assert words[2]["start_ms"] / 1000 - 0.01 <= current_s <= words[2]["start_ms"] / 1000 + 0.5, current_s

    # Copy puts the sentences on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.click("#copy-text")
    page.wait_for_selector("#toast >> text=Transcript copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert words_only(copied) == words_only(" ".join(seg["text"] for seg in transcript["segments"]))

    # Search within the transcript; "/" gets there from the keyboard.
    page.locator("#transcript").focus()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.type("country")
    page.wait_for_function("() => /of 2$/.test(document.querySelector('#search-count').textContent)")
    assert page.locator("#transcript .w.hit").count() == 2
    page.fill("#search", "")

    # Download SRT: its cues hold the transcript's sentences, in order, inside their times.
    with page.expect_download() as download_info:
        page.click("#dl-srt")
    download = download_info.value
    assert download.suggested_filename.endswith(".srt")
    cues = parse_srt(Path(download.path()).read_text(encoding="utf-8"))
    assert len(cues) >= len(transcript["segments"])
    assert words_only(" ".join(c[2] for c in cues)) == words_only(" ".join(s["text"] for s in transcript["segments"]))
    assert cues[0][0] == transcript["segments"][0]["start_ms"]
    assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:]))
    assert "ask not what your country can do for you" in words_only(" ".join(c[2] for c in cues))
    for fmt in ("txt", "vtt", "json"):
        href = page.locator(f"#dl-{fmt}").get_attribute("href")
        assert requests.get(base + href, timeout=10).status_code == 200

    # Options go with the upload: Chinese, a hotword, and the transcript renders in Chinese.
    page.locator("#viewer-close").click()
    page.fill("#opt-language", "Chinese")  # searched by name; the code is what is sent
    page.locator("#hotwords-details summary").click()
    page.fill("#opt-hotwords", "达摩院 20")
    page.set_input_files("#file-input", str(speech_path("asr_example.wav")))
    page.wait_for_selector('#jobs .job[data-status="done"] >> text=asr_example.wav', timeout=300_000)
    zh_job = page.locator("#jobs .job", has_text="asr_example.wav")
    zh_id = zh_job.get_attribute("data-id")
    options = service.job(zh_id)["options"]
    assert (options["language"], options["itn"], options["hotwords"], options["diarize"]) == ("zh", True, [["达摩院", 20.0]], False)
    zh_job.locator(".job-open").click()
    page.wait_for_selector('#transcript .seg-text[lang="zh-Hans"] .w')
    assert "达摩院" in page.locator("#transcript").inner_text()
    shot(page, "4-transcript-zh")

    # Phone-sized screen: the transcript takes the screen, the job list hides behind the back button.
    page.set_viewport_size({"width": 390, "height": 844})
    assert not page.locator(".side").is_visible()
    shot(page, "5-phone-transcript")
    page.locator("#viewer-close").click()
    assert page.locator(".side").is_visible()
    shot(page, "6-phone-jobs")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Delete asks once more, then the job and its files are gone.
    row = page.locator(f'#jobs .job[data-id="{job_id}"]')
    row.locator('button[aria-label^="Delete"]').click()
    row.locator('button[aria-label^="Press again"]').click()
    row.wait_for(state="detached")
    assert requests.get(f"{base}/api/v1/jobs/{job_id}", timeout=10).status_code == 404


def test_upload_cancel_and_refused_file(live_service, page, tmp_path):
    service = live_service(workers=0)
    base = service.base_url
    page.goto(base + "/")

    # Cancel mid-upload: the row goes away and no job is created.
    big = tmp_path / "long.wav"
    big.write_bytes(b"RIFF" + b"\0" * 3_000_000)
    throttle_upload(page, 100_000)
    page.set_input_files("#file-input", str(big))
    upload = page.locator("#uploads .upload")
    page.wait_for_function(
        "() => /\\/s/.test(document.querySelector('#uploads .upload .item-progress-text')?.textContent || '')")
    upload.locator('button[aria-label^="Cancel upload"]').click()
    upload.wait_for(state="detached")
    throttle_upload(page, None)
    assert requests.get(f"{base}/api/v1/jobs", timeout=10).json()["total"] == 0

    # A file that is not media: the server refuses it and the page says why, in words.
    bogus = tmp_path / "notes.mp3"
    bogus.write_text("these are meeting notes, not audio\n" * 20)
    page.set_input_files("#file-input", str(bogus))
    error = page.locator("#uploads .upload .item-error")
    error.wait_for()
    message = error.inner_text()
    assert "notes.mp3" in message and len(message) > 20, message
    assert page.locator("#uploads .upload .badge").inner_text() == "Not uploaded"
    shot(page, "7-refused")
    page.locator('#uploads button[aria-label^="Dismiss"]').click()
    assert page.locator("#uploads .upload").count() == 0

    # Drag and drop: the drop zone lights up while files are over the page, and a drop uploads them.
    page.evaluate("""() => {
        window.__drop = new DataTransfer();
        window.__drop.items.add(new File(['not audio either\\n'.repeat(40)], 'dropped.mp3', {type: 'audio/mpeg'}));
        document.querySelector('#dropzone').dispatchEvent(
            new DragEvent('dragenter', {dataTransfer: window.__drop, bubbles: true, cancelable: true}));
    }""")
    assert "dragging" in page.locator("#dropzone").get_attribute("class")
    page.evaluate("""() => {
        for (const type of ['dragover', 'drop']) document.querySelector('#dropzone').dispatchEvent(
            new DragEvent(type, {dataTransfer: window.__drop, bubbles: true, cancelable: true}));
    }""")
    assert "dragging" not in page.locator("#dropzone").get_attribute("class")
    page.locator("#uploads .upload .item-error").wait_for()
    assert "dropped.mp3" in page.locator("#uploads .upload .item-error").inner_text()
    assert requests.get(f"{base}/api/v1/jobs", timeout=10).json()["total"] == 0


def make_video(speech: Path, target: Path) -> Path:
    """A small real video (VP8 + Opus in WebM) carrying real speech, made with tingxie's own ffmpeg."""
    import subprocess

    from media import find_ffmpeg

    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "color=c=0x334155:s=320x180:r=10", "-i", str(speech),
         "-shortest", "-c:v", "libvpx", "-b:v", "100k", "-c:a", "libopus", str(target)],
        check=True, capture_output=True,
    )
    return target


def test_files_chosen_together_are_one_batch_and_a_link_is_a_job(live_service, page, speech_path, tmp_path):
    """Two files chosen at once: one batch, one row whose bar reaches done, a zip of both
    transcripts, its jobs under the row (a video among them plays as a video); and a link typed
    beside the picker: a job the worker fetches (from a local server the deployment allows)."""
    import io
    import shutil
    import zipfile

    from tests.support.settings import make_settings

    service = live_service(make_settings(tmp_path, fetch_allow=("127.0.0.1",)))
    page.goto(service.base_url + "/")
    page.locator("#jobs-empty").wait_for(state="visible")
    video = make_video(speech_path("jfk.flac"), tmp_path / "jfk-video.webm")

    page.set_input_files("#file-input", [str(video), str(speech_path("jfk.flac"))])
    batch = page.locator("#batches .batch")
    batch.wait_for()
    assert batch.count() == 1 and page.locator("#uploads .upload").count() == 0
    page.wait_for_selector('#batches .batch[data-status="running"], #batches .batch[data-status="completed"]')
    batch_id = batch.get_attribute("data-id")
    page.wait_for_selector('#batches .batch[data-status="completed"]', timeout=300_000)
    assert batch.locator('[role="progressbar"]').get_attribute("aria-valuenow") == "100"
    assert "2 of 2 done" in batch.inner_text() and batch.locator(".item-name").inner_text() == "2 files"
    assert page.locator("#jobs .job").count() == 0  # the batch's jobs are not each a row
    shot(page, "8-batch")
    api = requests.get(f"{service.base_url}/api/v1/batches/{batch_id}", timeout=10).json()
    assert api["counts"]["done"] == 2 and api["status"] == "completed"

    # Its zip, from the row's link: both transcripts, named by the files' names without their extension.
    with page.expect_download() as download:
        batch.locator(".batch-zip").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    names = set(archive.namelist())
    assert {"jfk-video.srt", "jfk.srt", "jfk-video.json", "jfk.json", "jfk.txt", "jobs.jsonl"} <= names, names
    assert "ask not what your country" in words_only(archive.read("jfk.txt").decode())

    # Its files, under the row: the video opens, plays as a video, and a word click seeks it.
    batch.locator(".batch-files summary").click()
    batch.locator(".file-open", has_text="jfk-video.webm").click()
    page.wait_for_selector("#transcript .w")
    page.wait_for_function("() => document.querySelector('#player video')?.readyState >= 1")
    assert page.evaluate("document.querySelector('#player video').videoWidth") == 320
    word = page.locator("#transcript .w").nth(5)
    word.click()
    current_s = page.evaluate("() => { const v = document.querySelector('#player video'); v.pause(); return v.currentTime; }")
    job_id = page.evaluate("location.hash").rsplit("/", 1)[-1]
    transcript = requests.get(
        f"{service.base_url}/api/v1/jobs/{job_id}/transcript", params={"format": "json"}, timeout=10).json()
    start_s = [w for seg in transcript["segments"] for w in seg["words"]][5]["start_ms"] / 1000
    assert start_s - 0.01 <= current_s <= start_s + 0.5, (current_s, start_s)
    page.click("#viewer-close")

    # A link beside the picker: refused in the page when it is not a link, else a job that finishes.
    page.fill("#link-input", "not a link")
    page.click("#link-form button[type=submit]")
    page.locator("#link-error").wait_for(state="visible")
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(speech_path("jfk.flac"), root / "linked.flac")
    site = StaticSite(root)
    try:
        page.fill("#link-input", f"{site.origin}/linked.flac")
        page.click("#link-form button[type=submit]")
        job = page.locator("#jobs .job", has_text="linked.flac")
        job.wait_for()
        assert page.locator("#link-error").is_hidden() and page.input_value("#link-input") == ""
        page.wait_for_selector('#jobs .job[data-status="done"]', timeout=300_000)
    finally:
        site.close()
    assert page.locator("#jobs .job").count() == 1 and "11 s audio" in job.inner_text()
    linked = requests.get(f"{service.base_url}/api/v1/jobs", timeout=10).json()["items"]
    assert [j["source_url"] for j in linked if j["batch_id"] is None] == [f"{site.origin}/linked.flac"]
    shot(page, "9-link")


def test_a_file_over_1_gb_uploads_without_being_held_in_memory(live_service, page, tmp_path):
    """1.1 GB of real WAV through the page: neither the browser nor the web process grows with it."""
    import subprocess
    import threading

    psutil = pytest.importorskip("psutil")
    from media import find_ffmpeg

    big = tmp_path / "long-meeting.wav"  # 48 kHz stereo silence, 98 minutes: under the duration cap
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "anullsrc=r=48000:cl=stereo", "-t", "5900", "-c:a", "pcm_s16le", str(big)],
                   check=True, capture_output=True)
    assert big.stat().st_size > 1_100_000_000

    service = live_service(workers=0)  # nothing transcribes it: this is about the upload
    page.goto(service.base_url + "/")
    web = psutil.Process(service.web.pid)
    browser = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]
    assert browser, "the browser's processes are children of this test"

    def browser_uss() -> int:
        total = 0
        for proc in browser:
            try:
                total += proc.memory_full_info().uss
            except psutil.NoSuchProcess:
                continue
        return total

    before_web, before_browser = web.memory_info().rss, browser_uss()
    peaks = {"web": before_web, "browser": before_browser}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peaks["web"] = max(peaks["web"], web.memory_info().rss)
            peaks["browser"] = max(peaks["browser"], browser_uss())
            done.wait(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        page.set_input_files("#file-input", str(big))
        page.wait_for_selector('#jobs .job[data-status="queued"]', timeout=300_000)
    finally:
        done.set()
        sampler.join()
    assert page.locator("#uploads .upload").count() == 0
    # The duration arrives with the job's first pushed snapshot, just after the upload's answer.
    page.wait_for_function("() => /1 h 38 min audio/.test(document.querySelector('#jobs .job').innerText)")
    grown_web_mb = (peaks["web"] - before_web) / 2**20
    grown_browser_mb = (peaks["browser"] - before_browser) / 2**20
    print(f"1.1 GB upload: web grew {grown_web_mb:.0f} MiB, browser grew {grown_browser_mb:.0f} MiB")
    assert grown_web_mb < 100, grown_web_mb
    assert grown_browser_mb < 200, grown_browser_mb


def test_speakers_are_labelled_coloured_and_renamed_for_every_export(live_service, page, speech_path, tmp_path):
    """Two real voices taking turns, uploaded with 'Label speakers': each sentence shows its
    speaker; renaming one renames it everywhere, and the downloads use the name."""
    from media import find_ffmpeg
    from tests.support.speaker_turns import TWO_VOICES, build

    turns = tmp_path / "two-voices.wav"
    build(speech_path("jfk.flac").parent, turns, find_ffmpeg(), TWO_VOICES)
    service = live_service()
    base = service.base_url
    page.goto(base + "/")
    page.locator("label.switch", has=page.locator("#opt-diarize")).click()  # as a person flips the switch
    assert page.locator("#opt-diarize").is_checked()
    page.set_input_files("#file-input", str(turns))
    page.wait_for_selector('#jobs .job[data-status="done"] >> text=two-voices.wav', timeout=300_000)
    job = page.locator("#jobs .job", has_text="two-voices.wav")
    job_id = job.get_attribute("data-id")
    assert service.job(job_id)["options"]["diarize"] is True
    job.locator(".job-open").click()
    page.wait_for_selector("#transcript .speaker")
    chips = page.locator("#transcript .speaker")
    labels = [chips.nth(i).inner_text() for i in range(chips.count())]
    assert labels[:2] == ["S1", "S2"] and set(labels) == {"S1", "S2"}
    assert chips.nth(0).evaluate("n => getComputedStyle(n).backgroundColor") != \
        chips.nth(1).evaluate("n => getComputedStyle(n).backgroundColor")
    shot(page, "7-speakers")

    chips.nth(0).click()
    page.fill("#transcript .speaker-name", "Kennedy")
    page.keyboard.press("Enter")
    page.wait_for_function("() => [...document.querySelectorAll('#transcript .speaker')]"
                           ".filter(n => n.textContent === 'Kennedy').length >= 2")
    assert "S1" not in [chips.nth(i).inner_text() for i in range(chips.count())]
    transcript = requests.get(f"{base}/api/v1/jobs/{job_id}/transcript", timeout=10).json()
    assert transcript["speakers"][0] == {"id": "S1", "name": "Kennedy"}
    srt = requests.get(f"{base}/api/v1/jobs/{job_id}/transcript?format=srt", timeout=10).text
    assert "[Kennedy] " in srt and "[S2] " in srt and "[S1]" not in srt
    vtt = requests.get(f"{base}/api/v1/jobs/{job_id}/transcript?format=vtt", timeout=10).text
    assert "<v Kennedy>" in vtt


def test_a_job_no_live_worker_serves_says_what_it_waits_for(live_service, page, speech_path):
    """The page shows the API's waiting_reason: a funasr job with only an offline worker up waits
    for a funasr worker, and says so in its row."""
    import requests

    service = live_service()  # one worker, offline only
    page.goto(service.base_url + "/")
    with open(speech_path("asr_example.wav"), "rb") as fh:
        job = requests.post(service.base_url + "/api/v1/jobs", files={"file": fh}, data={"profile": "funasr"},
                            timeout=60).json()
    row = page.locator(f'#jobs .job[data-id="{job["id"]}"]')
    row.wait_for(timeout=30_000)  # the page folds in jobs made elsewhere every few seconds
    page.wait_for_function(
        "id => document.querySelector(`#jobs .job[data-id='${id}'] [data-role=text]`).textContent"
        " === 'Waiting for a funasr worker'", arg=job["id"], timeout=30_000)
    shot(page, "waiting-for-a-funasr-worker")
    assert row.get_attribute("data-status") == "queued"


# --- Signing in, and what another site's page can do through a visitor's browser (issue 12) ------

def cli(service, *args: str) -> str:
    """A `tingxie` command against the service's database, as an operator would run it."""
    import subprocess
    import sys

    from tests.support.service import REPO, settings_env

    done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=settings_env(service.settings),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class StaticSite:
    """Another web site (another origin: its own port) serving a few files, as an attacker's page
    or FunASR's html5 demo would be served."""

    def __init__(self, root: Path):
        import functools
        import http.server
        import threading

        from tests.support.service import free_port

        self.port = free_port()
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *args: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_page_signs_in_with_a_token_works_and_signs_out(live_service, page, speech_path, tmp_path):
    from tests.support.settings import make_settings

    service = live_service(make_settings(tmp_path, auth="required"), workers=0)
    base = service.base_url
    token = cli(service, "tokens", "create", "--tenant", "team-a")
    assert token.startswith("tx_")

    page.goto(base + "/")
    page.locator("#signin").wait_for(state="visible")
    assert page.locator("#main").is_hidden()
    shot(page, "9-sign-in")
    page.fill("#signin-token", "tx_0123456789ab_" + "x" * 43)
    page.click("#signin-form button[type=submit]")
    page.locator("#signin-error").wait_for(state="visible")
    assert "not valid" in page.locator("#signin-error").inner_text()

    page.fill("#signin-token", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_function("() => /team-a/.test(document.querySelector('#account-name').textContent)")
    page.locator("#jobs-empty").wait_for(state="visible")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "tingxie_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"].startswith("txs_")
    assert page.evaluate("document.cookie") == ""  # the page's own script cannot read it either

    # Uploading (POST) and canceling (DELETE) from the page carry the session's CSRF token.
    page.set_input_files("#file-input", str(speech_path("asr_example.wav")))
    row = page.locator('#jobs .job[data-status="queued"]')
    row.wait_for()
    job_id = row.get_attribute("data-id")
    row.locator('button[aria-label^="Cancel transcription"]').click()
    page.wait_for_selector(f'#jobs .job[data-id="{job_id}"][data-status="canceled"]')
    job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert job["tenant"] == "team-a" and job["status"] == "canceled" and job["source"] == "page"

    # Sign out: the sign-in form again, and the old session is refused by the server.
    page.click("#sign-out")
    page.locator("#signin").wait_for(state="visible")
    stale = requests.get(f"{base}/api/v1/jobs", cookies={"tingxie_session": cookie["value"]}, timeout=10)
    assert stale.status_code == 401

    # The first user's way in: a one-time sign-in link (admin of 'local'), good once.
    link = cli(service, "tokens", "signin", "--admin", "--url", base)
    assert link.startswith(base + "/#signin=txc_")
    page.goto(link)
    page.wait_for_function("() => /local · admin/.test(document.querySelector('#account-name').textContent)")
    assert "signin" not in page.evaluate("location.href")  # the code left the address bar
    page.locator(f'#jobs .job[data-id="{job_id}"]').wait_for()  # an admin sees team-a's job
    page.click("#sign-out")
    page.locator("#signin").wait_for(state="visible")
    assert page.locator("#signin-error").is_hidden()  # signed out: the form, no error
    page.goto(link)
    page.wait_for_function("() => /used up/.test(document.querySelector('#signin-error').textContent)")


ATTACK_PAGE = """<!doctype html><meta charset="utf-8"><title>a page on another site</title>
<script>
window.__results = {};
function probeSocket(url) {
  return new Promise((resolve) => {
    const seen = { opened: false, messages: [] };
    const ws = new WebSocket(url);
    ws.onopen = () => { seen.opened = true; };
    ws.onmessage = (event) => seen.messages.push(String(event.data));
    ws.onclose = (event) => resolve({ ...seen, code: event.code });
    setTimeout(() => resolve({ ...seen, code: "timeout" }), 8000);
  });
}
async function attack(target, gateway, job) {
  const audio = await (await fetch("/speech.wav")).blob();
  const form = new FormData();
  form.append("file", audio, "csrf.wav");
  try {
    await fetch(target + "/api/v1/jobs", { method: "POST", body: form, mode: "no-cors", credentials: "include" });
    __results.post = "sent";
  } catch (error) { __results.post = "failed"; }
  try {
    const answer = await fetch(target + "/api/v1/jobs", { credentials: "include" });
    __results.read = await answer.text();
  } catch (error) { __results.read = "blocked"; }
  __results.events = await probeSocket(target.replace("http:", "ws:") + "/api/v1/jobs/" + job + "/events");
  __results.gateway = await probeSocket(gateway);
  __results.done = true;
}
</script>"""


def _attack(page, site: StaticSite, service, gateway_url: str, job_id: str) -> dict:
    page.goto(f"{site.origin}/attack.html")
    page.evaluate(f"attack({service.base_url!r}, {gateway_url!r}, {job_id!r})")
    page.wait_for_function("() => window.__results.done === true", timeout=60_000)
    return page.evaluate("window.__results")


def test_another_sites_page_gets_nothing_through_the_visitors_browser(live_service, page, speech_path, tmp_path):
    """CSRF and cross-site WebSocket hijacking, as the issue found them: a page on another origin
    makes the visitor's browser post a job, read the list, and open both WebSockets, first against
    a loopback tingxie used without a token, then against one the visitor is signed in to (its
    cookie is sent: 127.0.0.1 on another port is the same site)."""
    import shutil

    from tests.support.settings import make_settings
    from tests.support.gateway import start_gateway

    root = tmp_path / "attacker"
    root.mkdir()
    (root / "attack.html").write_text(ATTACK_PAGE)
    shutil.copy(speech_path("asr_example.wav"), root / "speech.wav")
    site = StaticSite(root)
    try:
        for auth in ("auto", "required"):
            service = live_service(make_settings(tmp_path / auth, auth=auth), workers=0)
            gateway_url = start_gateway(service, "--certfile", "0")
            token = cli(service, "tokens", "create", "--tenant", "local")
            owner = {"Authorization": f"Bearer {token}"}
            with open(speech_path("jfk.flac"), "rb") as fh:
                job_id = requests.post(f"{service.base_url}/api/v1/jobs", files={"file": ("victim.flac", fh)},
                                       headers=owner, timeout=60).json()["id"]
            if auth == "required":  # the visitor signs in to tingxie first
                page.goto(service.base_url + "/")
                page.fill("#signin-token", token)
                page.click("#signin-form button[type=submit]")
                page.locator("#jobs .job").first.wait_for()
            results = _attack(page, site, service, gateway_url, job_id)
            assert results["read"] == "blocked", results["read"][:200]  # no CORS: the answer is not readable
            assert results["events"]["opened"] is False and results["events"]["messages"] == [], results
            assert results["gateway"]["opened"] is False, results
            listed = requests.get(f"{service.base_url}/api/v1/jobs", headers=owner, timeout=10).json()
            assert [j["filename"] for j in listed["items"]] == ["victim.flac"], auth  # the POST made no job
            # Refused by the server, not merely unread by the browser.
            assert re.search(r'POST /api/v1/jobs HTTP/1.1\S*" 403', service.log("web")), service.log("web")
            assert re.search(r'GET /api/v1/jobs HTTP/1.1\S*" 403', service.log("web"))  # and the read
    finally:
        site.close()


def test_a_cookie_planted_by_a_page_on_another_port_never_makes_the_visitors_upload_its_job(live_service, page,
                                                                                            speech_path, tmp_path):
    """Cookie tossing (issue 20): a page on another port of the same host (cookies ignore ports)
    plants the attacker's own session cookie for Path=/api beside the visitor's. The visitor's page
    is then neither the visitor nor the attacker: it says to clear the site's cookies, and an upload
    from it becomes nobody's job; after clearing them the visitor signs in again."""
    from tests.support.settings import make_settings

    service = live_service(make_settings(tmp_path, auth="required"), workers=0)
    base = service.base_url
    victim = cli(service, "tokens", "create", "--tenant", "team-victim")
    attacker = cli(service, "tokens", "create", "--tenant", "team-attacker")
    planted = requests.post(f"{base}/api/v1/session", json={"token": attacker}, timeout=10).cookies["tingxie_session"]
    root = tmp_path / "tosser"
    root.mkdir()
    (root / "plant.html").write_text(f"""<!doctype html><meta charset="utf-8"><title>another port</title>
<script>document.cookie = "tingxie_session={planted}; Path=/api"; window.__planted = true;</script>""")
    site = StaticSite(root)
    try:
        page.goto(base + "/")
        page.fill("#signin-token", victim)
        page.click("#signin-form button[type=submit]")
        page.wait_for_function("() => /team-victim/.test(document.querySelector('#account-name').textContent)")
        page.goto(f"{site.origin}/plant.html")
        page.wait_for_function("() => window.__planted === true")
        assert sum(c["name"] == "tingxie_session" for c in page.context.cookies()) == 2

        page.goto(base + "/")
        page.locator("#signin-error").wait_for(state="visible")
        assert "clear this site's cookies" in page.locator("#signin-error").inner_text()
        assert "team-attacker" not in page.locator("#account-name").inner_text()
        shot(page, "10-tossed-cookie")
        page.set_input_files("#file-input", str(speech_path("asr_example.wav")))
        failed = page.locator("#uploads .item-error").first
        failed.wait_for(state="attached")
        assert "cookies" in failed.text_content()
        for token in (attacker, victim):
            listed = requests.get(f"{base}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert listed.json()["items"] == [], listed.json()
        assert re.search(r'POST /api/v1/jobs HTTP/1.1\S*" 400', service.log("web"))

        page.context.clear_cookies()
        page.goto(base + "/")
        page.fill("#signin-token", victim)
        page.click("#signin-form button[type=submit]")
        page.wait_for_function("() => /team-victim/.test(document.querySelector('#account-name').textContent)")
    finally:
        site.close()


HTML5_PAGE = """<!doctype html><meta charset="utf-8"><title>FunASR html5 demo, elsewhere</title>
<script>
window.__answer = null;
async function recognise(url) {
  const wav = new Uint8Array(await (await fetch("/speech.wav")).arrayBuffer());
  const ws = new WebSocket(url);
  ws.onclose = (event) => { if (!window.__answer) window.__answer = { closed: event.code }; };
  ws.onmessage = (event) => { window.__answer = JSON.parse(event.data); ws.close(); };
  ws.onopen = () => {
    ws.send(JSON.stringify({ chunk_size: [5, 10, 5], wav_name: "h5", is_speaking: true, chunk_interval: 10,
                             itn: true, mode: "offline", wav_format: "PCM", audio_fs: 16000, hotwords: "" }));
    for (let i = 0; i < wav.length; i += 960) ws.send(wav.slice(i, i + 960));
    ws.send(JSON.stringify({ is_speaking: false }));
  };
}
</script>"""


def test_funasrs_html5_page_from_a_listed_origin_works_and_others_are_refused(live_service, page, speech_path,
                                                                             tmp_path):
    import shutil

    from tests.support.settings import make_settings
    from tests.support.gateway import start_gateway

    root = tmp_path / "html5"
    root.mkdir()
    (root / "index.html").write_text(HTML5_PAGE)
    shutil.copy(speech_path("asr_example.wav"), root / "speech.wav")
    listed, unlisted = StaticSite(root), StaticSite(root)
    try:
        service = live_service(make_settings(tmp_path, allowed_origins=(listed.origin,)))
        url = start_gateway(service, "--certfile", "0", "--tenant", "html5")
        admin = {"Authorization": "Bearer " + cli(service, "tokens", "create", "--tenant", "ops", "--admin")}
        for site, works in ((unlisted, False), (listed, True)):
            page.goto(f"{site.origin}/index.html")
            page.evaluate(f"recognise({url!r})")
            page.wait_for_function("() => window.__answer !== null", timeout=300_000)
            answer = page.evaluate("window.__answer")
            if works:
                assert answer["wav_name"] == "h5" and answer["is_final"] is True and answer["text"], answer
                job = requests.get(f"{service.base_url}/api/v1/jobs/{answer['job_id']}", headers=admin, timeout=10)
                assert job.json()["tenant"] == "html5"
            else:
                assert answer == {"closed": 1006}, answer  # refused in the handshake: never opened
    finally:
        listed.close()
        unlisted.close()


def test_the_api_docs_page_runs_under_its_content_security_policy(live_service, page):
    """Swagger UI from tingxie's own files, with no inline script and nothing from another host: it
    renders the document (the fixture fails the test on any CSP violation)."""
    service = live_service(workers=0)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(service.base_url + "/api/v1/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "tingxie" in page.locator(".swagger-ui .info .title").inner_text()
    page.locator(".swagger-ui .opblock-tag-section").first.wait_for()
    assert all(url.startswith(service.base_url) or url.startswith("data:") for url in requested), requested
    assert "default-src 'none'" in requests.get(service.base_url + "/api/v1/docs", timeout=10).headers[
        "Content-Security-Policy"]
