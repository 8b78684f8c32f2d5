"""The routes: one page, an upload that makes a job, its live events, a kill button, and its files.

    GET  /                          the page (static/index.html: plain JS and a <canvas>, no build step)
    POST /jobs                      images + the form's options -> {"id": ...} (201), or {"error": ...}
    GET  /jobs/<id>                 the job's status: state, options, images and their tiles, files
    GET  /jobs/<id>/events          Server-Sent Events: spans, counters, holes, states (events.py)
    POST /jobs/<id>/kill            {"scenario": "one-worker" | "workers"}: the chaos demo's kill, now
    GET  /jobs/<id>/preview/<n>     image n as uploaded, small (the page draws tiles over it)
    GET  /jobs/<id>/output/<n>      image n blurred, once saved
    GET  /jobs/<id>/files/<name>    results.json, outputs.zip, charts/...: only names the finished job lists
    GET  /queue                     how many jobs run and wait
    GET  /approaches                the approaches the page offers, with their lessons

Flask, as the seeds (003, 004) had: the suite is threads, not asyncio, and so is a threaded WSGI server,
where a job is a thread and an event stream is a generator; Flask refuses an oversized request itself
(MAX_CONTENT_LENGTH, chunked bodies too), and its test client needs no running server.  Every error is
JSON with one line the page shows.
"""

from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from approaches.harness.live import NotNow, killable
from approaches.registry import APPROACHES
from approaches.web.events import sse
from approaches.web.jobs import MB, JobStore, Refused, WebJob, options_from, tile_view

STATIC = Path(__file__).with_name("static")


def create_app(store: JobStore) -> Flask:
    """The Flask app serving store's jobs (several browsers at once: each upload is a job of its own)."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = store.limits.request_bytes

    def job_or_404(job_id: str) -> WebJob:
        job = store.get(job_id)
        if job is None:
            raise Refused("no such job (finished jobs are removed after a while)", 404)
        return job

    @app.errorhandler(Refused)
    def refused(error: Refused) -> tuple[Response, int]:
        return jsonify(error=str(error)), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        return jsonify(error=f"the upload is over {store.limits.request_bytes // MB} MB in all; send fewer or "
                       "smaller images"), 413

    @app.errorhandler(HTTPException)
    def other(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=f"{error.code} {error.name}"), error.code or 500

    @app.after_request
    def guarded(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' blob:; " \
            "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"
        return response

    @app.get("/")
    def page() -> Response:
        return send_file(STATIC / "index.html", mimetype="text/html", max_age=0)

    @app.post("/jobs")
    def create() -> tuple[Response, int]:
        options = options_from(request.form)
        uploads = [(upload.filename or "", upload.stream) for upload in request.files.getlist("images")]
        job = store.create(uploads, options)
        return jsonify(job.status()), 201

    @app.get("/jobs/<job_id>")
    def status(job_id: str) -> Response:
        return jsonify(job_or_404(job_id).status())

    @app.get("/jobs/<job_id>/events")
    def events(job_id: str) -> Response:
        job = job_or_404(job_id)
        after = request.headers.get("Last-Event-ID", request.args.get("after", "0"))
        start = int(after) if after.isdigit() else 0
        stream = (sse(number, event) for number, event in job.events.follow(start))
        return Response(stream, mimetype="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.post("/jobs/<job_id>/kill")
    def kill(job_id: str) -> tuple[Response, int]:
        job = job_or_404(job_id)
        body: Any = request.get_json(silent=True) or {}
        try:
            store.kill(job, str(body.get("scenario", "one-worker")))
        except NotNow as error:
            return jsonify(error=str(error)), 409
        return jsonify(ok=True), 202

    @app.get("/jobs/<job_id>/preview/<int:index>")
    def preview(job_id: str, index: int) -> Response:
        return _send(store.preview(job_or_404(job_id), index))

    @app.get("/jobs/<job_id>/output/<int:index>")
    def output(job_id: str, index: int) -> Response:
        return _send(store.output(job_or_404(job_id), index))

    @app.get("/jobs/<job_id>/files/<path:name>")
    def download(job_id: str, name: str) -> Response:
        return _send(store.file(job_or_404(job_id), name), attachment=True)

    @app.get("/queue")
    def queue() -> Response:
        return jsonify(store.queue())

    @app.get("/approaches")
    def approaches() -> Response:
        return jsonify([{"letter": a.letter, "title": a.title, "lesson": a.lesson, "tiles": tile_view(a.letter),
                         "killable": killable(a.letter)} for a in APPROACHES.values()])

    return app


def _send(path: Path | None, attachment: bool = False) -> Response:
    if path is None:
        raise Refused("no such file (yet): outputs appear as images are saved, downloads once the job is done", 404)
    return send_file(path, as_attachment=attachment, download_name=path.name, max_age=0)
