"""MLflow tracking: the one module that talks to MLflow.

Sweeps write through a :class:`Tracker` (one parent run per sweep, one child run per trial);
dashboards read back through :func:`runs_dataframe` and :func:`metric_history`.

Store
-----
The embedded default is a SQLite file, ``sqlite:///<abs dir>/mlruns.db`` (MLflow 3 refuses the
old ``./mlruns`` file store unless ``MLFLOW_ALLOW_FILE_STORE=true``). URIs are made absolute so
Ray workers running in other working directories write to the same file, and artifacts of
experiments created here live beside that file in ``mlartifacts/`` (MLflow's own default is
``./mlruns`` under the *creating process's* working directory).

A fresh SQLite store is migrated (Alembic) by the first client that opens it; processes racing
on that first open can fail. Call :func:`ensure_experiment` on the driver before any trial
starts: it migrates the store and creates the experiment, and :class:`Tracker` only looks the
experiment up, never creates it.

Tracker
-------
A thin wrapper over :class:`mlflow.tracking.MlflowClient` with explicit run ids and no global
``mlflow.start_run`` state, so it is safe in Ray worker processes and threads. It pickles as its
``(tracking_uri, experiment_name)`` so it can be shipped to workers.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd

if TYPE_CHECKING:
    from mlflow.entities import Run

__all__ = [
    "RUN_COLUMNS",
    "Tracker",
    "default_tracking_uri",
    "ensure_experiment",
    "experiment_exists",
    "flat_rows",
    "flatten_params",
    "frame_from_rows",
    "list_experiments",
    "metric_history",
    "parent_runs_named",
    "resolve_tracking_uri",
    "run_rows",
    "run_url",
    "runs_cache",
    "runs_dataframe",
    "sqlite_path",
    "store_lock",
]

_logger = logging.getLogger(__name__)


# MLflow is imported on first use: importing it costs ~3 CPU-s, which `mvit-lab pareto` on a
# SQLite store (read with SQL, see _store_read) never needs
def MlflowClient(*args: Any, **kwargs: Any) -> Any:
    from mlflow.tracking import MlflowClient as client

    return client(*args, **kwargs)


def _mlflow_entities() -> Any:
    import mlflow.entities

    return mlflow.entities


def _mlflow_exception() -> type[Exception]:
    from mlflow.exceptions import MlflowException

    return MlflowException

DEFAULT_DB_NAME = "mlruns.db"
ARTIFACT_DIR_NAME = "mlartifacts"
PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "trial_id"
REASON_TAG = "reason"
STATUS_TAG = "status"
FINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
RUN_COLUMNS = ("run_id", "run_name", "status", "parent_run_id", "start_time", "end_time")

# MLflow 3 limits (mlflow.utils.validation: MAX_PARAMS_TAGS_PER_BATCH, MAX_PARAM_VAL_LENGTH,
# MAX_TAG_VAL_LENGTH). MLflow silently truncates long values; params are truncated here instead
# so that re-logging a param on resume compares the value MLflow actually stored.
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
_SEARCH_PAGE = 1000


# -- URIs -----------------------------------------------------------------------------------------
def default_tracking_uri(base_dir: str | Path = ".") -> str:
    """The embedded default store: ``sqlite:///<abs base_dir>/mlruns.db``."""
    return _sqlite_uri(Path(base_dir) / DEFAULT_DB_NAME)


def resolve_tracking_uri(uri: str | None, base_dir: str | Path = ".") -> str:
    """Normalise a tracking URI so that every process resolves it to the same store.

    ``None`` gives :func:`default_tracking_uri`; ``sqlite:///rel.db`` and a bare path such as
    ``runs/foo.db`` become absolute SQLite URIs (relative to ``base_dir``); any other URI
    (``http(s)://``, ``postgresql://``, ``file:``, ``databricks``, ...) is passed through.
    """
    if uri is None:
        return default_tracking_uri(base_dir)
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"tracking_uri: expected a non-empty string or None, got {uri!r}")
    uri = uri.strip()
    if uri.startswith("sqlite:///"):
        path, sep, query = uri[len("sqlite:///") :].partition("?")
        if path in ("", ":memory:"):
            return uri  # in-memory: nothing to anchor
        return _sqlite_uri(Path(base_dir) / path) + sep + query
    if urlparse(uri).scheme or uri == "databricks":
        return uri
    path = Path(base_dir) / uri
    if path.is_dir():
        raise ValueError(
            f"tracking_uri: {uri!r} is a directory; MLflow 3 rejects the plain file store, "
            f"give a SQLite file instead (e.g. {str(Path(uri) / DEFAULT_DB_NAME)!r})"
        )
    return _sqlite_uri(path)


def _sqlite_uri(path: Path) -> str:
    # an absolute POSIX path already starts with "/", giving the four slashes SQLAlchemy wants
    return "sqlite:///" + str(path.expanduser().resolve())


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory ones)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///") :].partition("?")[0]
    return None if path in ("", ":memory:") else Path(path)


def _artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file; servers decide for others."""
    path = sqlite_path(tracking_uri)
    return None if path is None else (path.parent / ARTIFACT_DIR_NAME).as_uri()


# -- experiments ----------------------------------------------------------------------------------
# MLflow 3's UI files an experiment without this tag under its GenAI views (traces,
# "Evaluation runs"); "custom_model_development" shows the runs as ordinary training runs. The
# values are the UI's ExperimentKind enum (mlflow/server/js), also named in mlflow's
# assistant/skills/mlflow-onboarding/SKILL.md.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
STORE_LOCK_TIMEOUT_S = 300.0


@contextmanager
def store_lock(tracking_uri: str, timeout_s: float = STORE_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Serialise processes on a SQLite store: an exclusive flock on ``<db>.lock`` beside the file.

    MLflow creates and migrates a fresh SQLite store on first open; two drivers doing that at
    once race in Alembic and one dies. Other stores (servers) serialise themselves: a no-op.
    """
    path = sqlite_path(resolve_tracking_uri(tracking_uri))
    if path is None:
        yield
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ValueError(f"tracking_uri: {lock} stayed locked for {timeout_s:.0f} s "
                                     "(another process is creating the store)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def ensure_experiment(name: str, tracking_uri: str) -> str:
    """Create the experiment ``name`` if it does not exist and return its id.

    Call it on the driver before any trial starts: the first client to open a fresh SQLite store
    runs the schema migration, which fails when concurrent processes race on it, so the store is
    opened under :func:`store_lock`. Calling it again (or from several processes once the store
    exists) returns the same id. A new experiment is tagged as a model-training experiment
    (:data:`EXPERIMENT_KIND_TAG`), so MLflow's UI lists its runs as training runs.
    """
    _check_name(name)
    with store_lock(tracking_uri):
        return _ensure_experiment(name, tracking_uri)


def _ensure_experiment(name: str, tracking_uri: str) -> str:
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(
                name, artifact_location=_artifact_location(client.tracking_uri),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
            _logger.info("created MLflow experiment %r (id %s)", name, experiment_id)
            return experiment_id
        except _mlflow_exception():
            # another process may have created it between the lookup and the create
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise ValueError(
            f"experiment {name!r} exists but is deleted; restore it (mlflow experiments restore) "
            "or purge it (mlflow gc) before reusing the name"
        )
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # made before the tag; a user's kind stays
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"experiment_name: expected a non-empty string, got {name!r}")


def _get_experiment_id(client: MlflowClient, name: str) -> str:
    _check_name(name)
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage != "active":
        raise ValueError(
            f"experiment {name!r} does not exist in {client.tracking_uri}; "
            "create it on the driver with ensure_experiment() first"
        )
    return experiment.experiment_id


def _sqlite_experiments(uri: str) -> list[dict[str, str]] | None:
    """A SQLite store's experiments read with SQL (``_store_read.sqlite_experiments``); None
    for other stores, a missing file, or a schema MLflow changed (then MLflow reads)."""
    from mvit_lab._store_read import sqlite_experiments

    path = sqlite_path(uri)
    if path is None or not path.is_file():
        return None
    try:
        return sqlite_experiments(path)
    except sqlite3.OperationalError as err:
        if "no such" not in str(err):
            raise
        _logger.warning("%s: MLflow's SQLite schema is not the one mvit-lab reads fast (%s); "
                        "reading through MLflow", path, err)
        return None


def _experiment_id(uri: str, name: str) -> str:
    """``_get_experiment_id``, read with SQL from a SQLite store (no MlflowClient)."""
    experiments = _sqlite_experiments(uri)
    if experiments is None:
        return _get_experiment_id(MlflowClient(uri), name)
    _check_name(name)
    for e in experiments:
        if e["name"] == name and e["lifecycle_stage"] == "active":
            return e["experiment_id"]
    raise ValueError(f"experiment {name!r} does not exist in {uri}; "
                     "create it on the driver with ensure_experiment() first")


def experiment_exists(tracking_uri: str, name: str) -> bool:
    """Whether the store has an experiment called ``name`` (active or deleted)."""
    uri = resolve_tracking_uri(tracking_uri)
    experiments = _sqlite_experiments(uri)
    if experiments is None:
        return MlflowClient(uri).get_experiment_by_name(name) is not None
    return any(e["name"] == name for e in experiments)


# -- params ---------------------------------------------------------------------------------------
def flatten_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings to dotted keys with string values, sorted by key.

    Strings stay as they are; every other leaf is JSON (``[1, 2]``, ``true``, ``null``, ``0.5``),
    tuples becoming lists, so a value reads back the same way whatever its Python type.
    """
    flat: dict[str, str] = {}
    _flatten_into(flat, d, prefix)
    return dict(sorted(flat.items()))


def _flatten_into(out: dict[str, str], d: Mapping[str, Any], prefix: str) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(f"flatten_params: expected a mapping, got {type(d).__name__}")
    for key, value in d.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"params: keys must be non-empty strings, got {key!r} in {prefix!r}")
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and value:
            _flatten_into(out, value, full)
            continue
        if full in out:
            raise ValueError(f"params: key {full!r} occurs twice after flattening")
        out[full] = value if isinstance(value, str) else _to_json(value, full)


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=_json_default)
    except TypeError as err:
        raise ValueError(f"{what}: cannot store {type(value).__name__} as JSON ({err})") from err


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, without importing numpy here
    for attr in ("tolist", "item"):
        if callable(getattr(obj, attr, None)):
            return getattr(obj, attr)()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    flat = flatten_params(params)
    for key, value in flat.items():
        if len(value) > MAX_PARAM_VALUE_LENGTH:
            _logger.warning(
                "param %r is %d characters; truncated to MLflow's limit of %d",
                key, len(value), MAX_PARAM_VALUE_LENGTH,
            )
            flat[key] = value[:MAX_PARAM_VALUE_LENGTH]
    return flat


def _tag_values(tags: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"tags: keys must be non-empty strings, got {key!r}")
        text = value if isinstance(value, str) else _to_json(value, f"tag {key!r}")
        out[key] = _clip_tag(text)
    return out


def _clip_tag(text: str) -> str:
    # keep the end: for a traceback or an error message that is the informative part
    if len(text) <= MAX_TAG_VALUE_LENGTH:
        return text
    return "..." + text[-(MAX_TAG_VALUE_LENGTH - 3) :]


def _filter_literal(value: str, what: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"{what}: {value!r} may not contain quotes or backslashes")
    return f"'{value}'"


# -- writing --------------------------------------------------------------------------------------
class Tracker:
    """Writes sweeps to MLflow: one parent run per sweep, one child run per trial.

    The experiment must exist (see :func:`ensure_experiment`); the constructor only looks it up.
    """

    def __init__(self, tracking_uri: str, experiment_name: str) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment_name = experiment_name
        self.client = MlflowClient(self.tracking_uri)
        self.experiment_id = _get_experiment_id(self.client, experiment_name)

    def __reduce__(self) -> tuple[type[Tracker], tuple[str, str]]:
        # ship the address, not the client and its database engine
        return (Tracker, (self.tracking_uri, self.experiment_name))

    def __repr__(self) -> str:
        return f"Tracker({self.tracking_uri!r}, {self.experiment_name!r})"

    # -- runs --
    def start_parent(
        self,
        name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        run_id: str | None = None,
    ) -> str:
        """Create the sweep's parent run, or with ``run_id`` resume that one; returns its id."""
        if run_id is not None:
            self._resume(self._get_run(run_id), params, tags)
            return run_id
        return self._create(name, params, _tag_values(tags))

    def start_child(
        self,
        parent_id: str,
        name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        run_id: str | None = None,
    ) -> str:
        """Create the child run of one trial, or resume it if it already exists; returns its id.

        ``tags`` must carry ``trial_id``. If ``run_id`` is given, or a run of the parent already
        has that ``trial_id`` (a resumed sweep), that run is set back to RUNNING, its
        ``reason`` / ``status`` tags from the last attempt are cleared and missing params are
        added; a param whose value differs from the stored one is a ValueError (MLflow params
        are immutable).
        """
        trial_id = tags.get(TRIAL_TAG)
        if trial_id is None or str(trial_id) == "":
            raise ValueError(f"tags: {TRIAL_TAG!r} is required to start a child run")
        self._get_run(parent_id)  # fail early on a wrong parent id
        if run_id is not None:
            run = self._get_run(run_id)
            if run.data.tags.get(PARENT_TAG) != parent_id:
                raise ValueError(f"run_id: run {run_id} is not a child of run {parent_id}")
        else:
            run = self._find_child(parent_id, str(trial_id))
        if run is not None:
            self._resume(run, params, tags)
            return run.info.run_id
        child_tags = _tag_values(tags)
        child_tags[PARENT_TAG] = parent_id
        return self._create(name, params, child_tags)

    def _create(self, name: str, params: Mapping[str, Any], tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=name)
        self._log_params(run.info.run_id, _param_values(params), existing={})
        return run.info.run_id

    def _resume(self, run: Run, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        run_id = run.info.run_id
        self._log_params(run_id, _param_values(params), existing=run.data.params)
        for key in (REASON_TAG, STATUS_TAG):
            if key in run.data.tags and key not in tags:
                self.client.delete_tag(run_id, key)
        self.set_tags(run_id, tags)
        self.client.update_run(run_id, status="RUNNING")
        _logger.info("resumed run %s (%s, was %s)", run_id, run.info.run_name, run.info.status)

    def _find_child(self, parent_id: str, trial_id: str) -> Run | None:
        filter_string = (
            f"tags.`{PARENT_TAG}` = {_filter_literal(parent_id, 'parent_id')}"
            f" and tags.{TRIAL_TAG} = {_filter_literal(trial_id, TRIAL_TAG)}"
        )
        runs = list(_search(self.client, self.experiment_id, filter_string))
        if len(runs) > 1:
            _logger.warning(
                "%d runs of parent %s carry trial_id %r; resuming the oldest",
                len(runs), parent_id, trial_id,
            )
        return runs[0] if runs else None

    def _log_params(
        self, run_id: str, params: dict[str, str], existing: Mapping[str, str]
    ) -> None:
        changed = [k for k, v in params.items() if k in existing and existing[k] != v]
        if changed:
            detail = ", ".join(f"{k}: {existing[k]!r} -> {params[k]!r}" for k in changed)
            raise ValueError(
                f"params of run {run_id} cannot change (MLflow params are immutable): {detail}"
            )
        new = [_mlflow_entities().Param(k, v) for k, v in params.items() if k not in existing]
        for start in range(0, len(new), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=new[start : start + MAX_PARAMS_PER_BATCH])

    def _get_run(self, run_id: str) -> Run:
        return _get_run(self.client, run_id)

    # -- data --
    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int,
                    timestamp_ms: int | None = None) -> None:
        """Log ``metrics`` at ``step``; None and NaN values are skipped (a failed eval, say).
        ``timestamp_ms`` (default: now) keeps a replayed journal's original times."""
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise ValueError(f"step: expected an int, got {step!r}")
        timestamp = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        entries = []
        for key, value in metrics.items():
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, numbers.Real):
                raise ValueError(f"metric {key!r}: expected a number, got {value!r}")
            value = float(value)
            if math.isnan(value):
                continue
            entries.append(_mlflow_entities().Metric(key, value, timestamp, int(step)))
        if entries:
            self.client.log_batch(run_id, metrics=entries)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set (or overwrite) tags; non-string values are stored as JSON."""
        entries = [_mlflow_entities().RunTag(k, v) for k, v in _tag_values(tags).items()]
        for start in range(0, len(entries), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=entries[start : start + MAX_PARAMS_PER_BATCH])

    def log_dict(self, run_id: str, obj: Any, artifact_file: str) -> None:
        """Store ``obj`` as a JSON artifact (strict: an unserialisable value is a ValueError)."""
        _check_artifact_file(artifact_file, ".json")
        self.log_text(run_id, _to_json_pretty(obj, artifact_file), artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Store ``text`` as the artifact ``artifact_file`` (a relative path)."""
        _check_artifact_file(artifact_file)
        if not isinstance(text, str):
            raise ValueError(f"{artifact_file}: expected text, got {type(text).__name__}")
        self.client.log_text(run_id, text, artifact_file)

    def log_figure_html(self, run_id: str, html: str, artifact_file: str) -> None:
        """Store a rendered figure (e.g. ``fig.to_html()``) as an ``.html`` text artifact."""
        _check_artifact_file(artifact_file, ".html")
        self.log_text(run_id, html, artifact_file)

    # -- ending --
    def finish(self, run_id: str, status: str = "FINISHED", reason: str | None = None) -> None:
        """End a run as FINISHED, FAILED or KILLED, tagging ``reason`` when given.

        A FAILED run always carries a ``reason`` tag: one set earlier with :meth:`set_tags` is
        kept, else it reads ``unknown``.
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"status: expected one of {FINAL_STATUSES}, got {status!r}")
        if status == "FAILED" and reason is None:
            if REASON_TAG not in self._get_run(run_id).data.tags:
                reason = "unknown"
        if reason is not None:
            self.set_tags(run_id, {REASON_TAG: reason})
        self.client.set_terminated(run_id, status=status)

    def close_stale(self, parent_id: str, keep: Collection[str] = ()) -> list[str]:
        """Mark children of ``parent_id`` left RUNNING (a killed driver) as KILLED.

        Each gets the tag ``status=interrupted``. Children whose ``trial_id`` is in ``keep``
        (trials the caller is about to resume) are left alone. Returns the ids of closed runs.
        """
        keep = {str(k) for k in keep}
        filter_string = (
            f"tags.`{PARENT_TAG}` = {_filter_literal(parent_id, 'parent_id')}"
            " and attributes.status = 'RUNNING'"
        )
        closed = []
        for run in _search(self.client, self.experiment_id, filter_string):
            if run.data.tags.get(TRIAL_TAG) in keep:
                continue
            self.set_tags(run.info.run_id, {STATUS_TAG: "interrupted"})
            self.client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
        if closed:
            _logger.info("closed %d interrupted child run(s) of %s", len(closed), parent_id)
        return closed


def _check_artifact_file(artifact_file: str, suffix: str | None = None) -> None:
    if not isinstance(artifact_file, str) or not artifact_file:
        raise ValueError(f"artifact_file: expected a relative path, got {artifact_file!r}")
    parts = Path(artifact_file).parts
    if artifact_file.startswith("/") or ".." in parts:
        raise ValueError(f"artifact_file: {artifact_file!r} must be a relative path in the run")
    if suffix is not None and not artifact_file.endswith(suffix):
        raise ValueError(f"artifact_file: {artifact_file!r} must end with {suffix!r}")


def _to_json_pretty(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    except TypeError as err:
        raise ValueError(f"{what}: cannot store {type(obj).__name__} as JSON ({err})") from err


# -- reading --------------------------------------------------------------------------------------
def _get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except _mlflow_exception() as err:
        raise ValueError(
            f"run_id: no run {run_id!r} in {client.tracking_uri} ({err.message})"
        ) from err


def _search(client: MlflowClient, experiment_id: str, filter_string: str = "") -> Iterator[Run]:
    """All active runs matching ``filter_string``, oldest first, across result pages."""
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=_mlflow_entities().ViewType.ACTIVE_ONLY,
            max_results=_SEARCH_PAGE,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def runs_dataframe(
    tracking_uri: str, experiment_name: str, parent_run_id: str | None = None
) -> pd.DataFrame:
    """One row per run of the experiment (only the children of ``parent_run_id`` if given).

    Columns: :data:`RUN_COLUMNS` (times as UTC timestamps; no end time while RUNNING), then
    ``tag.<name>``, ``param.<name>`` and ``metric.<name>`` (the value at the latest step), each
    group sorted. ``frame.attrs["experiment_id"]`` holds the experiment's id.
    """
    uri = resolve_tracking_uri(tracking_uri)
    experiment_id = _experiment_id(uri, experiment_name)
    return frame_from_rows(_read_rows(None, uri, experiment_id, parent_run_id),
                           experiment_id)


def run_rows(tracking_uri: str, experiment_name: str, *, params: Collection[str] | None = None,
             metrics: Collection[str] | None = None) -> list[dict[str, Any]]:
    """The experiment's runs as :func:`flat_rows` (the :func:`runs_dataframe` frame's rows,
    without building the frame), narrowed to what the caller reads: ``params``, the params
    whose names start with one of these prefixes (``("model.",)``); ``metrics``, these
    metrics (default: all of each; tags are always all read)."""
    uri = resolve_tracking_uri(tracking_uri)
    experiment_id = _experiment_id(uri, experiment_name)
    return flat_rows(_read_rows(None, uri, experiment_id, params=params, metrics=metrics))


def _read_rows(client: MlflowClient | None, uri: str, experiment_id: str,
               parent_run_id: str | None = None, params: Collection[str] | None = None,
               metrics: Collection[str] | None = None) -> list[dict[str, Any]]:
    """The experiment's active runs as plain rows (see ``_store_read.sqlite_rows``, also for
    ``params`` and ``metrics``): a SQLite store in four SQL queries, any other through
    ``search_runs``."""
    from mvit_lab._store_read import sqlite_rows

    path = sqlite_path(uri)
    if path is not None:
        where, args = "", []
        if parent_run_id is not None:
            where = ("r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?)")
            args = [PARENT_TAG, parent_run_id]
        try:
            return sqlite_rows(path, experiment_id, where, args, params, metrics)
        except sqlite3.OperationalError as err:
            if "no such" not in str(err):  # a broken store: the caller reports it
                raise
            # MLflow changed its tables: the slow, documented read still works
            _logger.warning("%s: MLflow's SQLite schema is not the one mvit-lab reads fast (%s); "
                        "reading through search_runs", path, err)
    client = client or MlflowClient(uri)  # created only here: it costs seconds the first time
    filter_string = ""
    if parent_run_id is not None:
        filter_string = f"tags.`{PARENT_TAG}` = {_filter_literal(parent_run_id, 'parent_run_id')}"
    prefixes = None if params is None else tuple(params)
    wanted = None if metrics is None else set(metrics)
    return [dict(run_id=run.info.run_id, run_name=run.info.run_name, status=run.info.status,
                 start_time=run.info.start_time, end_time=run.info.end_time,
                 tags=dict(run.data.tags),
                 params={k: v for k, v in run.data.params.items()
                         if prefixes is None or k.startswith(prefixes)},
                 metrics={k: v for k, v in run.data.metrics.items()
                          if wanted is None or k in wanted})
            for run in _search(client, experiment_id, filter_string)]


def flat_rows(rows: Collection[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain run rows as the :func:`runs_dataframe` frame's rows (``tag.*``, ``param.*``,
    ``metric.*`` keys), without building the frame: what a reader of a few changed runs
    needs."""
    out = []
    for r in rows:
        row: dict[str, Any] = {
            "run_id": r["run_id"],
            "run_name": r["run_name"],
            "status": r["status"],
            "parent_run_id": r["tags"].get(PARENT_TAG),
            "start_time": _timestamp(r["start_time"]),
            # a resumed run keeps its previous end_time in MLflow; it has not ended
            "end_time": _timestamp(None if r["status"] == "RUNNING" else r["end_time"]),
        }
        # each group sorted by name, as the frame's columns are
        row.update({f"tag.{k}": r["tags"][k] for k in sorted(r["tags"])})
        row.update({f"param.{k}": r["params"][k] for k in sorted(r["params"])})
        row.update({f"metric.{k}": r["metrics"][k] for k in sorted(r["metrics"])})
        out.append(row)
    return out


def frame_from_rows(rows: Collection[dict[str, Any]], experiment_id: str) -> pd.DataFrame:
    """Plain run rows as the :func:`runs_dataframe` frame."""
    out = flat_rows(rows)
    if not out:
        frame = pd.DataFrame(columns=list(RUN_COLUMNS))
    else:
        frame = pd.DataFrame(out)
        extra = sorted(
            (c for c in frame.columns if c not in RUN_COLUMNS),
            key=lambda c: (("tag.", "param.", "metric.").index(c.split(".", 1)[0] + "."), c),
        )
        frame = frame[list(RUN_COLUMNS) + extra]
    frame.attrs["experiment_id"] = experiment_id
    return frame


def runs_cache(tracking_uri: str, experiment_name: str, full_every_s: float = 300.0) -> Any:
    """A :class:`mvit_lab._store_read.RunsCache` of the experiment: its runs as rows,
    refreshed incrementally by ``refresh()`` (see that module); ``frame_from_rows`` turns
    the rows into the :func:`runs_dataframe` frame."""
    from mvit_lab._store_read import RunsCache

    uri = resolve_tracking_uri(tracking_uri)
    experiment_id = _experiment_id(uri, experiment_name)
    return RunsCache(sqlite_path(uri), experiment_id,
                     lambda: _read_rows(None, uri, experiment_id), full_every_s)


def parent_runs_named(tracking_uri: str, experiment_name: str, run_name: str) -> list[Run]:
    """The active top-level runs (sweeps' parent runs) of the experiment called ``run_name``,
    oldest first; none if the experiment does not exist."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None or experiment.lifecycle_stage != "active":
        return []
    filter_string = f"attributes.run_name = {_filter_literal(run_name, 'run_name')}"
    return [r for r in _search(client, experiment.experiment_id, filter_string)
            if PARENT_TAG not in r.data.tags]


def _timestamp(ms: int | None) -> pd.Timestamp:
    return pd.NaT if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


def metric_history(tracking_uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every logged value of metric ``key``, by step then logging time."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    _get_run(client, run_id)
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return [(m.step, m.value) for m in history]


def load_json_artifact(tracking_uri: str, run_id: str, artifact_file: str) -> Any | None:
    """A JSON artifact ``log_dict`` wrote to a run, or None if the run has no such file."""
    import json
    import tempfile

    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    folder = str(Path(artifact_file).parent) if Path(artifact_file).parent != Path(".") else None
    if artifact_file not in {a.path for a in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, artifact_file, tmp)
        return json.loads(Path(path).read_text())


def list_experiments(tracking_uri: str) -> list[dict[str, str]]:
    """``name`` and ``experiment_id`` of every active experiment, by name.

    Reading never creates a store: a SQLite URI whose file does not exist is a ValueError.
    """
    uri = resolve_tracking_uri(tracking_uri)
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise ValueError(f"tracking_uri: no MLflow store at {path}")
    fast = _sqlite_experiments(uri)
    if fast is not None:
        return [dict(name=e["name"], experiment_id=e["experiment_id"]) for e in fast
                if e["lifecycle_stage"] == "active"]
    client = MlflowClient(uri)
    experiments = client.search_experiments(
        view_type=_mlflow_entities().ViewType.ACTIVE_ONLY)
    return sorted((dict(name=e.name, experiment_id=e.experiment_id) for e in experiments),
                  key=lambda e: e["name"])


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page on an MLflow tracking server (None for stores without one, e.g. SQLite;
    serve those with ``mlflow ui --backend-store-uri URI``)."""
    uri = resolve_tracking_uri(tracking_uri)
    if urlparse(uri).scheme not in ("http", "https"):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
