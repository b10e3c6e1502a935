"""The Gradio page: upload a video, choose the settings, submit a Dagster run, follow it, compare the result.

The page is thin: it never runs a model. Everything goes through :mod:`orchestration.launch` (service, options, uploads: checks,
output plan, settings, run submission and read-back from the Dagster instance). The handlers are plain
functions of the service and plain values (:mod:`ui.process`, :mod:`ui.reports`, :mod:`ui.choices`,
:mod:`ui.common`); :func:`build_app` wires them to components.

API endpoints (``gradio_client``; positional arguments, a ``gr.State`` is never an argument):

* ``/inspect`` (file) -> (metadata table, message)
* ``/process`` (file, model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps, temporal,
  temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds) -> (run id, message); a refused
  request gives run id ``""`` and the reason as the message
* ``/preview``: the same arguments and results as ``/process``, for the first seconds of the video
* ``/progress`` (run id) -> (progress HTML, Dagster status word, result video, result file)
* ``/cancel`` (run id) -> message
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from orchestration.launch.events import first_line
from orchestration.launch.options import interpolation_methods, model_choices
from orchestration.launch.service import DagsterService
from orchestration.launch.uploads import max_upload_bytes
from ui.choices import (
    CODECS,
    CONTAINERS,
    DEVICES,
    FACTORS,
    MODE_FACTOR,
    MODE_FPS,
    SCALES,
    TEMPORAL_METHODS,
    PageChoices,
    container_for,
    method_label,
    method_markdown,
    model_label,
    model_markdown,
    page_settings,
    remember,
)
from ui.common import (
    WARN,
    file_argument,
    format_duration,
    received_upload,
    servable,
    served_folders,
    table,
)
from ui.i18n import I18N, label, lang_of, msg
from ui.process import (
    FINISHED,
    Inspection,
    ProgressView,
    Submission,
    cancel_run,
    inspect_file,
    plan_markdown,
    preview_pair,
    progress_html,
    progress_view,
    submit_run,
)
from ui.reports import (
    RUN_HEADERS,
    CompareView,
    compare_images,
    compare_view,
    finished_runs,
    metrics_rows,
    run_logs,
    runs_rows,
    system_rows,
)

log = logging.getLogger(__name__)

UPLOAD_TYPES = [".mp4", ".mov", ".mkv", ".avi", ".webm"]
API_NAMES = ("inspect", "process", "preview", "progress", "cancel")

CSS = """
.vup-progress { height: 14px; border-radius: 7px; background: var(--neutral-200); overflow: hidden; }
.vup-progress-fill { height: 100%; background: var(--color-accent); transition: width 0.5s ease; }
.vup-progress-fill.vup-failure { background: #d9534f; }
.vup-progress-fill.vup-canceled { background: var(--neutral-400); }
.vup-progress-text { margin: 6px 0 0 0; font-variant-numeric: tabular-nums; }
"""


# ------------------------------------------------------------------------------------------------ the page


def launch_options(service: DagsterService, *, max_upload: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: the translations, the only folders the page may serve
    (outputs, uploads, reports), the upload limit (``max_upload`` or ``max_upload_bytes()``), theme and CSS.

    Raises:
        SettingsError: ``VUP_MAX_UPLOAD_MB`` is malformed.
    """
    workspace = service.workspace
    limit = max_upload if max_upload is not None else max_upload_bytes()
    return {
        "i18n": I18N,
        "allowed_paths": [str(folder) for folder in served_folders(workspace)],
        "max_file_size": limit,
        "theme": gr.themes.Soft(),
        "css": CSS,
    }


def _choice_list(values: tuple[str, ...], translated: dict[str, str]) -> list[tuple[Any, str]]:
    return [(I18N(translated[v]) if v in translated else v, v) for v in values]


def build_app(service: DagsterService, *, max_upload: int | None = None) -> gr.Blocks:
    """The page's Blocks (tabs Process, Compare, Settings, System) wired to ``service``; see the module
    docstring for its API endpoints. Launch it with ``**launch_options(service)``."""
    workspace = service.workspace
    models = model_choices()
    methods = interpolation_methods()
    initial = page_settings(workspace, models, methods)

    with gr.Blocks(title="Video Upscaler Pro", delete_cache=(3600, 6 * 3600)) as app:
        upload_state = gr.State(None)
        run_state = gr.State({})
        shown_state = gr.State("")
        compare_state = gr.State({})
        gr.Markdown(I18N("heading"), elem_id="heading")
        # filled by the load event once the remembered settings are in place (browser automation waits for it)
        ready = gr.HTML("", visible="hidden", elem_id="page-ready")

        with gr.Tabs(elem_id="tabs"):
            with gr.Tab(I18N("tab_process"), id="process"):
                with gr.Row():
                    with gr.Column(scale=1):
                        upload = gr.File(label=I18N("upload"), file_types=UPLOAD_TYPES, type="filepath",
                                         elem_id="upload")
                        upload_message = gr.Markdown(elem_id="upload-message")
                        metadata = gr.Dataframe(headers=["field", "value"], label=I18N("metadata"),
                                                interactive=False, wrap=True, elem_id="metadata")
                    with gr.Column(scale=1):
                        model = gr.Dropdown([(model_label(m), m.id) for m in models], value=initial["model"],
                                            label=I18N("model"), elem_id="model")
                        model_info = gr.Markdown(model_markdown(initial["model"], models), elem_id="model-info")
                        scale = gr.Radio([(f"×{s}", s) for s in SCALES], value=initial["scale"],
                                         label=I18N("scale"), elem_id="scale")
                        plan = gr.Markdown(I18N("plan_none"), elem_id="output-plan")
                        interp_on = gr.Checkbox(False, label=I18N("interpolation"), elem_id="interpolation")
                        with gr.Column(visible=False) as interp_box:
                            interp_method = gr.Dropdown([(method_label(n, r), n) for n, r in methods],
                                                        value=initial["interp_method"], label=I18N("interp_method"),
                                                        elem_id="interp-method")
                            interp_info = gr.Markdown(method_markdown(initial["interp_method"], methods),
                                                      elem_id="interp-info")
                            interp_mode = gr.Radio([(I18N("mode_factor"), MODE_FACTOR), (I18N("mode_fps"), MODE_FPS)],
                                                   value=MODE_FACTOR, label=I18N("interp_mode"),
                                                   elem_id="interp-mode")
                            factor = gr.Radio([(f"×{f}", f) for f in FACTORS], value=2, label=I18N("factor"),
                                              elem_id="factor")
                            target_fps = gr.Number(60, label=I18N("target_fps"), minimum=1, visible=False,
                                                   elem_id="target-fps")
                with gr.Row():
                    preview_button = gr.Button(I18N("preview"), elem_id="preview-button")
                    process_button = gr.Button(I18N("process"), variant="primary", elem_id="process-button")
                    cancel_button = gr.Button(I18N("cancel"), variant="stop", elem_id="cancel-button")
                with gr.Row():
                    run_id = gr.Textbox(label=I18N("run_id"), interactive=False, elem_id="run-id")
                    run_status = gr.Textbox(label=I18N("run_status"), interactive=False, elem_id="run-status")
                process_message = gr.Markdown(elem_id="process-message")
                cancel_message = gr.Markdown(elem_id="cancel-message")
                progress = gr.HTML(progress_html(0.0, ""), elem_id="progress")
                with gr.Row():
                    result_video = gr.Video(label=I18N("result_video"), interactive=False, elem_id="result-video")
                    result_file = gr.File(label=I18N("result_file"), interactive=False, elem_id="result-file")
                with gr.Row(visible=False) as preview_row:
                    preview_source = gr.Video(label=I18N("preview_source"), interactive=False,
                                              elem_id="preview-source")
                    preview_result = gr.Video(label=I18N("preview_result"), interactive=False,
                                              elem_id="preview-result")
                timer = gr.Timer(1.0, active=False)

            with gr.Tab(I18N("tab_compare"), id="compare"):
                with gr.Row():
                    compare_run = gr.Dropdown([], label=I18N("finished_run"), scale=4, elem_id="compare-run")
                    compare_refresh = gr.Button(I18N("refresh"), scale=1, elem_id="compare-refresh")
                compare_message = gr.Markdown(elem_id="compare-message")
                compare_summary = gr.Markdown(elem_id="compare-summary")
                compare_time = gr.Slider(0, 1, value=0, step=0.1, label=I18N("time"), elem_id="compare-time")
                compare_slider = gr.ImageSlider(label=I18N("before_after"), interactive=False,
                                                elem_id="compare-slider")
                with gr.Row():
                    compare_source = gr.Video(label=I18N("source_video"), interactive=False, elem_id="compare-source")
                    compare_output = gr.Video(label=I18N("output_video"), interactive=False, elem_id="compare-output")
                metrics = gr.Dataframe(headers=["metric", "output", "lanczos baseline", "ratio"],
                                       label=I18N("metrics"), interactive=False, elem_id="metrics")
                per_frame = gr.Image(label=I18N("per_frame"), type="filepath", interactive=False, visible=False,
                                     elem_id="per-frame")
                with gr.Accordion(I18N("definitions"), open=False):
                    definitions = gr.Markdown(elem_id="definitions")

            with gr.Tab(I18N("tab_settings"), id="settings"):
                gr.Markdown(I18N("settings_note"))
                temporal = gr.Dropdown(_choice_list(TEMPORAL_METHODS, {"none": "opt_none", "auto": "opt_auto"}),
                                       value=initial["temporal"], label=I18N("temporal"), elem_id="temporal")
                temporal_strength = gr.Slider(0, 0.95, value=initial["temporal_strength"], step=0.05,
                                              label=I18N("temporal_strength"), elem_id="temporal-strength")
                device = gr.Dropdown(_choice_list(DEVICES, {"auto": "opt_auto"}), value=initial["device"],
                                     label=I18N("device"), elem_id="device")
                batch = gr.Number(initial["batch"], precision=0, minimum=0, label=I18N("batch"), elem_id="batch")
                fp16 = gr.Checkbox(initial["fp16"], label=I18N("fp16"), elem_id="fp16")
                codec = gr.Dropdown(list(CODECS), value=initial["codec"], label=I18N("codec"), elem_id="codec")
                container = gr.Dropdown(list(CONTAINERS), value=initial["container"], label=I18N("container"),
                                        elem_id="container")
                crf = gr.Slider(0, 51, value=initial["crf"], step=1, label=I18N("crf"), elem_id="crf")
                chunk_seconds = gr.Number(initial["chunk_seconds"], minimum=0.5, label=I18N("chunk_seconds"),
                                          elem_id="chunk-seconds")

            with gr.Tab(I18N("tab_system"), id="system") as system_tab:
                system_refresh = gr.Button(I18N("refresh"), elem_id="system-refresh")
                system_table = gr.Dataframe(headers=["field", "value"], label=I18N("system_info"), interactive=False,
                                            wrap=True, elem_id="system-info")
                runs_table = gr.Dataframe(headers=list(RUN_HEADERS), label=I18N("recent_runs"), interactive=False,
                                          datatype=["str"] * 7 + ["markdown"], wrap=True, elem_id="recent-runs")
                with gr.Row():
                    log_run = gr.Dropdown([], label=I18N("log_run"), allow_custom_value=True, scale=4,
                                          elem_id="log-run")
                    show_logs = gr.Button(I18N("show_logs"), scale=1, elem_id="show-logs")
                logs = gr.Code(label=I18N("logs"), interactive=False, lines=20, elem_id="logs")

        settings_inputs = [temporal, temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds]
        run_inputs = [upload, model, scale, interp_on, interp_method, interp_mode, factor, target_fps,
                      *settings_inputs]
        plan_inputs = [upload_state, scale, interp_on, interp_method, interp_mode, factor, target_fps]

        # -- Process tab

        def on_plan(state, scale_value, on, method, mode, factor_value, fps, request: gr.Request):
            upload_info = (state or {}).get("upload")
            choices = PageChoices(None, scale_value, on, method, mode, factor_value, fps)
            return plan_markdown(upload_info, choices, lang_of(request))

        # Events that take the file run with preprocess=False: Gradio's own file-type check would answer an API
        # call with an exception, where accept_upload's refusal says what to do.

        def on_inspect(file, request: gr.Request):
            """(file) -> (metadata table, message)."""
            lang = lang_of(request)
            path, name = file_argument(file)
            path = received_upload(path, workspace)
            inspection = inspect_file(workspace, path, original_name=name, max_upload=max_upload, lang=lang)
            state = {"file": path, "upload": inspection.upload} if inspection.upload else None
            headers = [label(lang, "col_field"), label(lang, "col_value")]
            return table(inspection.rows, headers), inspection.message, state

        upload.change(on_inspect, [upload], [metadata, upload_message, upload_state], api_name="inspect",
                      preprocess=False, concurrency_id="uploads", concurrency_limit=1).then(
            on_plan, plan_inputs, [plan], api_visibility="private", show_progress="hidden")

        gr.on([scale.change, interp_on.change, interp_method.change, interp_mode.change, factor.change,
               target_fps.change], on_plan, plan_inputs, [plan], api_visibility="private", show_progress="hidden",
              concurrency_limit=None)

        interp_on.change(lambda on: gr.Column(visible=bool(on)), [interp_on], [interp_box], api_visibility="private",
                         show_progress="hidden", queue=False)
        interp_mode.change(lambda mode: (gr.Radio(visible=mode != MODE_FPS), gr.Number(visible=mode == MODE_FPS)),
                           [interp_mode], [factor, target_fps], api_visibility="private", show_progress="hidden",
                           queue=False)

        def on_model(model_id, request: gr.Request):
            return model_markdown(model_id, models, lang_of(request))

        model.change(on_model, [model], [model_info], api_visibility="private", show_progress="hidden")

        def on_method(method, request: gr.Request):
            return method_markdown(method, methods, lang_of(request))

        interp_method.change(on_method, [interp_method], [interp_info], api_visibility="private",
                             show_progress="hidden")

        def _submit(kind, file, values, state, request):
            lang = lang_of(request)
            path, name = file_argument(file)
            path = received_upload(path, workspace)
            cached = (state or {}).get("upload") if path and (state or {}).get("file") == path else None
            submission = submit_run(service, path, PageChoices(*values), kind=kind, original_name=name,
                                    upload=cached, models=models, methods=methods, max_upload=max_upload, lang=lang)
            if not submission.run_id:
                gr.Warning(submission.message.removeprefix(WARN))
                return "", submission.message, {}
            for key, value in (("model", values[0]), ("scale", values[1]), ("interp_method", values[3])):
                remember(workspace, key, value)
            return submission.run_id, submission.message, {"run_id": submission.run_id, "kind": kind,
                                                           "source": submission.source}

        def on_process(file, model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps,
                       temporal, temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds, state,
                       request: gr.Request):
            """(file, model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps, temporal,
            temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds) -> (run_id, message);
            a refusal gives run_id "" and the reason."""
            values = (model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps, temporal,
                      temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds)
            return _submit("process", file, values, state, request)

        def on_preview(file, model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps,
                       temporal, temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds, state,
                       request: gr.Request):
            """Same arguments and results as ``process``, for the first seconds of the video (a preview run)."""
            values = (model, scale, interpolation_on, interp_method, interp_mode, factor, target_fps, temporal,
                      temporal_strength, device, batch, fp16, codec, container, crf, chunk_seconds)
            return _submit("preview", file, values, state, request)

        def start_polling(state, request: gr.Request):
            if not (state or {}).get("run_id"):
                return (gr.skip(),) * 9
            text = msg(lang_of(request), "queued")
            return (gr.Timer(active=True), progress_html(0.0, text), "", None, None, "", gr.Row(visible=False),
                    None, None)

        polling_outputs = [timer, progress, run_status, result_video, result_file, shown_state, preview_row,
                           preview_source, preview_result]
        for button, handler, name in ((process_button, on_process, "process"), (preview_button, on_preview, "preview")):
            button.click(handler, [*run_inputs, upload_state], [run_id, process_message, run_state], api_name=name,
                         preprocess=False, concurrency_id="uploads", concurrency_limit=1).then(
                start_polling, [run_state], polling_outputs, api_visibility="private", show_progress="hidden")

        def on_progress(run_id, shown, request: gr.Request):
            """(run_id) -> (progress HTML, Dagster status word, result video, result file); a result already
            sent to this page is not sent again."""
            view = progress_view(service, run_id, lang_of(request))
            if view.file and shown and shown == run_id:
                return view.html, view.status, gr.skip(), gr.skip(), shown
            return view.html, view.status, view.video, view.file, run_id if view.file else shown

        timer.tick(on_progress, [run_id, shown_state], [progress, run_status, result_video, result_file, shown_state],
                   api_name="progress", show_progress="hidden", concurrency_limit=None)

        def on_status(status, state):
            if status not in FINISHED:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            state = state or {}
            if status == "SUCCESS" and state.get("kind") == "preview" and state.get("run_id"):
                source, output = preview_pair(service, state.get("source"), state["run_id"])
                return gr.Timer(active=False), gr.Row(visible=True), source, output
            return gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip()

        run_id.change(lambda value: gr.skip() if value else gr.Timer(active=False), [run_id], [timer],
                      api_visibility="private", show_progress="hidden", queue=False)
        run_status.change(on_status, [run_status, run_state], [timer, preview_row, preview_source, preview_result],
                          api_visibility="private", show_progress="hidden")

        def on_cancel(run_id, request: gr.Request):
            """(run_id) -> message."""
            return cancel_run(service, run_id, lang_of(request))

        cancel_button.click(on_cancel, [run_id], [cancel_message], api_name="cancel")

        # -- Settings: every change is remembered

        def saver(key: str):
            def save(value):
                remember(workspace, key, value)

            return save

        remembered = {"model": model, "scale": scale, "interp_method": interp_method, "temporal": temporal,
                      "temporal_strength": temporal_strength, "device": device, "batch": batch, "fp16": fp16,
                      "codec": codec, "container": container, "crf": crf, "chunk_seconds": chunk_seconds}
        for key, component in remembered.items():
            component.input(saver(key), [component], None, api_visibility="private", show_progress="hidden",
                            concurrency_limit=None)

        def on_codec(value, current):
            # a codec its container cannot hold (ProRes in mp4) moves the container to the codec's own
            chosen = container_for(value, current)
            if chosen != current:
                remember(workspace, "container", chosen)
            return chosen

        codec.input(on_codec, [codec, container], [container], api_visibility="private", show_progress="hidden")

        # -- Compare tab

        def on_refresh_runs(current):
            # keep the chosen run; else pick the newest, so one click shows something
            choices = finished_runs(service)
            ids = [run for _label, run in choices]
            return gr.Dropdown(choices=choices, value=current if current in ids else (ids[0] if ids else None))

        compare_refresh.click(on_refresh_runs, [compare_run], [compare_run], api_visibility="private")

        def on_compare(run_id_value, request: gr.Request):
            lang = lang_of(request)
            view = compare_view(service, run_id_value, lang)
            headers = [label(lang, k) for k in ("col_metric", "col_output", "col_baseline", "col_ratio")]
            return (view.message, view.summary, gr.Slider(maximum=max(view.duration, 0.1), value=0),
                    view.source_video, view.output_video, table(view.rows, headers),
                    gr.Image(value=view.plot, visible=view.plot is not None), view.definitions,
                    {"source": view.source, "output": view.output})

        def on_frames(state, seconds):
            state = state or {}
            return compare_images(state.get("source"), state.get("output"), seconds)

        compare_run.change(on_compare, [compare_run], [compare_message, compare_summary, compare_time,
                                                       compare_source, compare_output, metrics, per_frame,
                                                       definitions, compare_state],
                           api_visibility="private").then(
            on_frames, [compare_state, compare_time], [compare_slider], api_visibility="private")
        compare_time.release(on_frames, [compare_state, compare_time], [compare_slider], api_visibility="private",
                             show_progress="minimal")

        # -- System tab

        def on_system(request: gr.Request):
            lang = lang_of(request)
            runs = runs_rows(service, lang)
            choices = []
            try:
                choices = [(f"{r.run_id[:8]} · {r.source or r.partition or '?'} · {r.status}", r.run_id)
                           for r in service.recent_runs(20)]
            except Exception as exc:  # noqa: BLE001 - the dropdown stays empty
                log.warning("ui: cannot list runs: %s", first_line(exc))
            return (table(system_rows(service, lang), [label(lang, "col_field"), label(lang, "col_value")]),
                    table(runs, [label(lang, k) for k in RUN_HEADERS]), gr.Dropdown(choices=choices))

        system_outputs = [system_table, runs_table, log_run]
        system_refresh.click(on_system, None, system_outputs, api_visibility="private")
        system_tab.select(on_system, None, system_outputs, api_visibility="private")

        def on_logs(run_id_value, request: gr.Request):
            return run_logs(service, run_id_value, lang_of(request))

        show_logs.click(on_logs, [log_run], [logs], api_visibility="private")
        log_run.change(on_logs, [log_run], [logs], api_visibility="private")

        # -- page load: remembered settings, fresh model list, finished runs

        def on_load(request: gr.Request):
            nonlocal models, methods
            lang = lang_of(request)
            try:
                models = model_choices()
                methods = interpolation_methods()
            except Exception as exc:  # noqa: BLE001 - keep the lists read at start
                log.warning("ui: cannot refresh the model list: %s", first_line(exc))
            values = page_settings(workspace, models, methods)
            return (
                gr.Dropdown(choices=[(model_label(m, lang), m.id) for m in models], value=values["model"]),
                model_markdown(values["model"], models, lang),
                values["scale"],
                gr.Dropdown(choices=[(method_label(n, r, lang), n) for n, r in methods],
                            value=values["interp_method"]),
                method_markdown(values["interp_method"], methods, lang),
                values["temporal"], values["temporal_strength"], values["device"], values["batch"], values["fp16"],
                values["codec"], values["container"], values["crf"], values["chunk_seconds"],
                msg(lang, "plan_none"),
                gr.Dropdown(choices=finished_runs(service)),
                '<span data-ready="1"></span>',
            )

        app.load(on_load, None, [model, model_info, scale, interp_method, interp_info, *settings_inputs, plan,
                                 compare_run, ready], api_visibility="private")
    return app


__all__ = [
    "API_NAMES",
    "CompareView",
    "Inspection",
    "PageChoices",
    "ProgressView",
    "Submission",
    "build_app",
    "cancel_run",
    "compare_images",
    "compare_view",
    "file_argument",
    "finished_runs",
    "format_duration",
    "inspect_file",
    "launch_options",
    "metrics_rows",
    "page_settings",
    "plan_markdown",
    "progress_view",
    "received_upload",
    "remember",
    "run_logs",
    "runs_rows",
    "servable",
    "served_folders",
    "submit_run",
    "system_rows",
]
