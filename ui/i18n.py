"""The page's words in English and French.

``LABELS`` are the fixed labels (tabs, buttons, fields): they go to Gradio as ``I18N(key)`` and the browser
picks the language. ``MESSAGES`` are the texts the handlers write (upload messages, output plan, progress); they
are formatted on the server in the language of the request's ``Accept-Language`` (:func:`lang_of`), English when
there is none (API clients). Messages from the pipeline itself (refusals, errors) stay in English.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

LANGUAGES = ("en", "fr")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "heading": "# Video Upscaler Pro\nUpscale, interpolate and steady videos; every run is a Dagster run, "
                   "also shown in the Dagster UI.",
        "tab_process": "Process",
        "tab_compare": "Compare",
        "tab_settings": "Settings",
        "tab_system": "System",
        "upload": "Video (MP4, MOV, MKV, AVI, WEBM)",
        "metadata": "Video",
        "col_field": "field",
        "col_value": "value",
        "model": "Model",
        "scale": "Scale",
        "interpolation": "Frame interpolation",
        "interp_method": "Interpolation method",
        "interp_mode": "Interpolate by",
        "mode_factor": "a factor",
        "mode_fps": "a target frame rate",
        "factor": "Factor",
        "target_fps": "Target frame rate (fps, at most 120)",
        "preview": "Preview (first 5 s)",
        "process": "Process",
        "cancel": "Cancel",
        "run_id": "Run id",
        "run_status": "Status",
        "result_video": "Result",
        "result_file": "Download",
        "preview_source": "Source (first seconds)",
        "preview_result": "Preview",
        "finished_run": "Finished run",
        "refresh": "Refresh",
        "time": "Time (s)",
        "before_after": "Before (lanczos) / after",
        "source_video": "Source",
        "output_video": "Output",
        "metrics": "Metrics",
        "col_metric": "metric",
        "col_output": "output",
        "col_baseline": "lanczos baseline",
        "col_ratio": "ratio",
        "per_frame": "Per frame",
        "definitions": "Definitions",
        "plan_none": "**Output:** upload a video to see the output size.",
        "temporal": "Temporal coherence",
        "temporal_strength": "Temporal strength",
        "device": "Device",
        "batch": "Frames per model call (0 = automatic)",
        "fp16": "Half precision (fp16)",
        "codec": "Codec",
        "container": "Container",
        "crf": "Quality (CRF: lower is better and larger)",
        "chunk_seconds": "Chunk length (s)",
        "settings_note": "Changes are saved at once and remembered next time.",
        "opt_none": "none",
        "opt_auto": "automatic",
        "system_info": "This machine",
        "recent_runs": "Recent runs",
        "col_run": "run",
        "col_status": "status",
        "col_source": "source",
        "col_launched_by": "launched by",
        "col_kind": "kind",
        "col_started": "started",
        "col_seconds": "seconds",
        "col_link": "Dagster UI",
        "log_run": "Run",
        "show_logs": "Show logs",
        "logs": "Logs",
    },
    "fr": {
        "heading": "# Video Upscaler Pro\nAgrandir, interpoler et stabiliser des vidéos ; chaque traitement est "
                   "un run Dagster, visible aussi dans l'interface Dagster.",
        "tab_process": "Traiter",
        "tab_compare": "Comparer",
        "tab_settings": "Réglages",
        "tab_system": "Système",
        "upload": "Vidéo (MP4, MOV, MKV, AVI, WEBM)",
        "metadata": "Vidéo",
        "col_field": "champ",
        "col_value": "valeur",
        "model": "Modèle",
        "scale": "Facteur d'agrandissement",
        "interpolation": "Interpolation d'images",
        "interp_method": "Méthode d'interpolation",
        "interp_mode": "Interpoler selon",
        "mode_factor": "un facteur",
        "mode_fps": "une cadence cible",
        "factor": "Facteur",
        "target_fps": "Cadence cible (i/s, 120 au plus)",
        "preview": "Aperçu (5 premières s)",
        "process": "Traiter",
        "cancel": "Annuler",
        "run_id": "Identifiant du run",
        "run_status": "État",
        "result_video": "Résultat",
        "result_file": "Télécharger",
        "preview_source": "Source (premières secondes)",
        "preview_result": "Aperçu",
        "finished_run": "Run terminé",
        "refresh": "Actualiser",
        "time": "Instant (s)",
        "before_after": "Avant (lanczos) / après",
        "source_video": "Source",
        "output_video": "Sortie",
        "metrics": "Mesures",
        "col_metric": "mesure",
        "col_output": "sortie",
        "col_baseline": "référence lanczos",
        "col_ratio": "rapport",
        "per_frame": "Par image",
        "definitions": "Définitions",
        "plan_none": "**Sortie :** déposez une vidéo pour voir la taille de sortie.",
        "temporal": "Cohérence temporelle",
        "temporal_strength": "Force de la cohérence",
        "device": "Matériel",
        "batch": "Images par appel du modèle (0 = automatique)",
        "fp16": "Demi-précision (fp16)",
        "codec": "Codec",
        "container": "Conteneur",
        "crf": "Qualité (CRF : plus bas = meilleur et plus lourd)",
        "chunk_seconds": "Durée d'un segment (s)",
        "settings_note": "Les changements sont enregistrés aussitôt et retrouvés la fois suivante.",
        "opt_none": "aucune",
        "opt_auto": "automatique",
        "system_info": "Cette machine",
        "recent_runs": "Runs récents",
        "col_run": "run",
        "col_status": "état",
        "col_source": "source",
        "col_launched_by": "lancé par",
        "col_kind": "type",
        "col_started": "début",
        "col_seconds": "secondes",
        "col_link": "Interface Dagster",
        "log_run": "Run",
        "show_logs": "Afficher les journaux",
        "logs": "Journaux",
    },
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "upload_first": "Upload a video first.",
        "accepted": "{name} accepted.",
        "plan_none": "**Output:** upload a video to see the output size.",
        "plan": "**Output:** {size}{at} (source {source})",
        "at_fps": " at {fps} fps",
        "warning": "Warning: {text}",
        "refused": "Refused: {text}",
        "model_unknown": "Pick a model from the list.",
        "model_unavailable": "Model {model} is unavailable: {reason}",
        "unavailable": "unavailable: {reason}",
        "unavailable_word": "unavailable",
        "open_link": "open",
        "method_unavailable": "Interpolation method {method} is unavailable: {reason}",
        "submitted": "{kind} run `{short}` submitted: [open it in the Dagster UI]({url})",
        "kind_process": "Process",
        "kind_preview": "Preview",
        "no_run": "No run yet: press Preview or Process.",
        "progress": "{percent}% · {stage} · elapsed {elapsed} · {eta}",
        "eta": "about {left} left",
        "estimating": "estimating…",
        "queued": "queued · waiting for the Dagster daemon to start it",
        "done": "done in {elapsed}",
        "failed": "failed: {error}",
        "cancelled": "cancelled",
        "cancelling": "cancelling…",
        "unknown_run": "no such run: {error}",
        "not_playable": "The result ({codec} in {suffix}) does not play in a browser; download it.",
        "outside": "{name} is outside the page's folders, so it cannot be shown here.",
        "no_report": "This run has no report.",
        "pick_run": "Pick a finished run.",
        "no_logs": "No logs for this run.",
        "report_summary": "**{model}** on {device} ({precision}) · output {width}x{height}, {frames} frames, "
                          "{duration} s, {codec}",
        "grade": "grade",
        "grade_stability_only": "stability only (no reference: detail and faithfulness not graded)",
    },
    "fr": {
        "upload_first": "Déposez d'abord une vidéo.",
        "accepted": "{name} acceptée.",
        "plan_none": "**Sortie :** déposez une vidéo pour voir la taille de sortie.",
        "plan": "**Sortie :** {size}{at} (source {source})",
        "at_fps": " à {fps} i/s",
        "warning": "Attention : {text}",
        "refused": "Refusé : {text}",
        "model_unknown": "Choisissez un modèle dans la liste.",
        "model_unavailable": "Le modèle {model} n'est pas disponible : {reason}",
        "unavailable": "indisponible : {reason}",
        "unavailable_word": "indisponible",
        "open_link": "ouvrir",
        "method_unavailable": "La méthode d'interpolation {method} n'est pas disponible : {reason}",
        "submitted": "Run {kind} `{short}` soumis : [l'ouvrir dans l'interface Dagster]({url})",
        "kind_process": "de traitement",
        "kind_preview": "d'aperçu",
        "no_run": "Aucun run : appuyez sur Aperçu ou Traiter.",
        "progress": "{percent} % · {stage} · écoulé {elapsed} · {eta}",
        "eta": "encore {left} environ",
        "estimating": "estimation…",
        "queued": "en file · le démon Dagster va le lancer",
        "done": "terminé en {elapsed}",
        "failed": "échec : {error}",
        "cancelled": "annulé",
        "cancelling": "annulation…",
        "unknown_run": "run introuvable : {error}",
        "not_playable": "Le résultat ({codec} en {suffix}) ne se lit pas dans un navigateur ; téléchargez-le.",
        "outside": "{name} est hors des dossiers de la page : il ne peut pas être affiché ici.",
        "no_report": "Ce run n'a pas de rapport.",
        "pick_run": "Choisissez un run terminé.",
        "no_logs": "Aucun journal pour ce run.",
        "report_summary": "**{model}** sur {device} ({precision}) · sortie {width}x{height}, {frames} images, "
                          "{duration} s, {codec}",
        "grade": "note",
        "grade_stability_only": "stabilité seulement (sans référence : ni détail ni fidélité notés)",
    },
}

# Field names of the metadata and system tables (UploadInfo.rows(), system_info()), translated on the server.
FIELDS_FR = {
    "file": "fichier",
    "resolution": "résolution",
    "fps": "cadence (i/s)",
    "duration": "durée",
    "video codec": "codec vidéo",
    "audio": "audio",
    "size": "taille",
    "device": "matériel",
    "VRAM": "VRAM",
    "memory": "mémoire",
    "CPU": "processeur",
    "system": "système",
    "versions": "versions",
    "workspace": "espace de travail",
    "Dagster instance": "instance Dagster",
    "chunk cache": "cache des segments",
    "Dagster UI": "interface Dagster",
}

I18N = gr.I18n(**LABELS)


def lang_of(request: Any | None) -> str:
    """The page language of a Gradio request: French when the first ``Accept-Language`` entry is French,
    else English (also for API clients, which send none)."""
    headers = getattr(request, "headers", None)
    if headers is None:
        return "en"
    first = str(headers.get("accept-language") or "").split(",")[0].strip().lower()
    return "fr" if first.startswith("fr") else "en"


def msg(lang: str, key: str, **values: Any) -> str:
    """The message ``key`` in ``lang`` (English when missing), formatted with ``values``."""
    table = MESSAGES.get(lang, MESSAGES["en"])
    return table.get(key, MESSAGES["en"][key]).format(**values)


def label(lang: str, key: str) -> str:
    """A fixed label formatted on the server (table headers of returned tables)."""
    return LABELS.get(lang, LABELS["en"]).get(key, LABELS["en"][key])


def field(lang: str, name: str) -> str:
    """A metadata or system field name in ``lang``."""
    return FIELDS_FR.get(name, name) if lang == "fr" else name
