"""The dashboard's pages as Dash component trees: the header, the experiments table, the sweep
picker, and the tabs (Pareto fronts with the run panel, parallel coordinates, tables,
ladders of the same steps side by side across experiments, e.g. from scratch and with MAE,
and a design_spaces sweep's populations compared by their error EDFs).

Only layout lives here; :mod:`mvit_lab.dashboards.app` fills it from the store.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from dash import dcc, html

from mvit_lab.dashboards import explain

__all__ = ["INDEX", "page", "run_panel", "table"]

INDEX = """<!DOCTYPE html>
<html>
<head>
{%metas%}<title>{%title%}</title>{%favicon%}{%css%}
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
.page { max-width: 1400px; margin: 0 auto; padding: 1em 2em 3em; }
header { display: flex; align-items: baseline; gap: 1.5em; flex-wrap: wrap; }
header h1 { font-size: 1.5em; margin: 0.3em 0; }
.meta, .note { color: #666; font-size: 0.9em; }
.message:empty { display: none; }
.message { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.6em 1em;
           margin: 0.6em 0; white-space: pre-wrap; }
.controls { display: flex; gap: 1em; flex-wrap: wrap; align-items: flex-end; margin: 0.8em 0; }
.controls label { font-size: 0.85em; color: #555; display: block; }
.controls .Select, .controls .dash-dropdown { min-width: 14em; }
.fronts { display: flex; flex-wrap: wrap; gap: 1em; }
.front { flex: 1 1 560px; min-width: 0; background: white; padding: 0.5em;
         border: 1px solid #e4e4e4; }
.run { background: white; border: 1px solid #e4e4e4; padding: 0.5em 1em; margin-top: 1em; }
.run pre { background: #f6f6f6; padding: 0.6em; max-height: 24em; overflow: auto;
           font-size: 0.85em; }
.columns { display: flex; gap: 2em; flex-wrap: wrap; }
.columns > div { flex: 1 1 420px; min-width: 0; }
table.data { border-collapse: collapse; margin: 0.8em 0 0.2em; font-size: 0.9em;
             background: white; }
table.data caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 0.25em 0.6em;
                               text-align: left; }
table.data th { background: #f4f4f4; }
.recipe { font-size: 0.85em; color: #444; margin: 0.3em 0 0.6em; }
.recipe .flag { background: #fdecea; border-left: 4px solid #d62728; padding: 0.4em 0.8em;
                font-weight: bold; color: #8a1c1c; }
.recipe .ok { color: #2a7a2a; font-weight: bold; }
</style>
</head>
<body>
{%app_entry%}
<footer>{%config%}{%scripts%}{%renderer%}</footer>
</body>
</html>"""


def table(t: dict[str, Any], id: str | None = None) -> html.Div:
    """A text table (``dict(title, columns, rows, note)``) as Dash components."""
    rows = [html.Tr([html.Td(cell) for cell in row]) for row in t["rows"]]
    extra = {"id": id} if id else {}
    return html.Div([
        html.Table([html.Caption(t["title"]),
                    html.Thead(html.Tr([html.Th(c) for c in t["columns"]])),
                    html.Tbody(rows)], className="data", **extra),
        html.P(t["note"], className="note") if t.get("note") else None])


def _dropdown(id: str, label: str, clearable: bool = False) -> html.Div:
    return html.Div([html.Label(label, htmlFor=id),
                     dcc.Dropdown(id=id, clearable=clearable, style={"minWidth": "14em"})])


def _front_panel(i: int) -> html.Div:
    return html.Div([
        html.Div([_dropdown(f"y-{i}", "y axis"), _dropdown(f"x-{i}", "x axis"),
                  _dropdown(f"color-{i}", "colour", clearable=True)], className="controls"),
        html.Div(id=f"front-message-{i}", className="message"),
        dcc.Graph(id=f"front-{i}", config=dict(displaylogo=False), style={"height": "480px"}),
    ], className="front")


def page(uri: str, refresh_s: float, views: int = 2) -> html.Div:
    """The whole page; its contents come from the callbacks."""
    fronts = html.Div([
        html.Div([_front_panel(i) for i in range(views)], className="fronts"),
        html.P("Click a point to open its run. Hover shows how its architecture differs from "
               "the search space's base.", className="note"),
        html.Div(id="run", className="run", children=html.P(
            "No run selected.", className="note")),
    ])
    parallel = html.Div([html.Div(id="parallel-message", className="message"),
                         dcc.Graph(id="parallel", config=dict(displaylogo=False),
                                   style={"height": "520px"})])
    return html.Div([
        dcc.Interval(id="tick", interval=int(refresh_s * 1000)),
        dcc.Store(id="state"),
        dcc.Store(id="counts-key"),
        dcc.Store(id="selected-run"),
        *explain.stores(),
        html.Header([html.H1("mvit-lab sweeps"),
                     html.Span(f"MLflow store {uri}", className="meta"),
                     html.Span(id="live", className="meta")]),
        html.Div(id="message", className="message"),
        html.Div(id="experiments"),
        html.Div([_dropdown("experiment", "experiment"), _dropdown("sweep", "sweep")],
                 className="controls"),
        html.P(id="sweep-meta", className="meta"),
        explain.recipe_banner(),
        dcc.Tabs(id="tabs", value="fronts", children=[
            dcc.Tab(label="Pareto fronts", value="fronts", children=fronts),
            dcc.Tab(label="Parallel coordinates", value="parallel", children=parallel),
            dcc.Tab(label="Tables", value="tables", children=html.Div(id="tables")),
            dcc.Tab(label="Ladders side by side", value="ladders",
                    children=html.Div(id="ladders")),
            *explain.tabs(),
            dcc.Tab(label="Design spaces", value="design",
                    children=html.Div(id="design-spaces")),
            dcc.Tab(label="Budget", value="budget", children=dcc.Graph(  # early stopping
                id="budget", config=dict(displaylogo=False), style={"height": "480px"})),
        ]),
    ], className="page")


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return v if isinstance(v, str) else json.dumps(v)


def run_panel(details: dict[str, Any], curves: Any, cost: Any | None) -> list[Any]:
    """The run panel's children: identity and links, the architecture's difference from the
    base, metrics, per-epoch curves, the cost per stage, the full config."""
    d = details
    link = (html.A("open in MLflow", href=d["url"], target="_blank") if d["url"] else
            html.Span(["MLflow UI: run ", html.Code(d["ui_command"]), " then open ",
                       html.A(d["ui_url"], href=d["ui_url"], target="_blank")
                       if d["ui_url"] else "the run"]))
    head = [html.H3(f"Run {d['point'] or d['run_name'] or d['run_id']}"),
            html.P(["MLflow run id ", html.Code(d["run_id"], id="run-id"),
                    f" · experiment {d['experiment']} · seed {d['seed']} · status {d['status']}",
                    " · ", link], className="meta")]
    if d["reason"]:
        head.append(html.P(f"reason: {d['reason']}", className="message"))
    if d["diff"]:
        diff = html.Ul([html.Li([html.Code(k), f": {_value(b)} → {_value(v)}"])
                        for k, b, v in d["diff"]])
    else:
        diff = html.P("the search space's base architecture" if d["base_known"] else
                      "the search space's base is unknown", className="note")
    metrics = table(dict(title="Metrics", columns=["metric", "value"],
                         rows=[[k, _value(v)] for k, v in d["metrics"].items()], note=""))
    left = html.Div([html.H4("Architecture vs the search space's base"), diff, metrics])
    cost_part: list[Any] = [html.H4("Cost per stage (count_flops on the logged config)")]
    if cost is not None:
        c = d["cost"]
        cost_part += [dcc.Graph(figure=cost, config=dict(displaylogo=False)), table(dict(
            title=f"{c['gflops']:.4g} GFLOPs (multiply-adds), {c['params']:,} params",
            columns=["stage", "blocks", "dim", "heads", "tokens", "attention", "GFLOPs",
                     "share"],
            rows=[[s["stage"], str(s["blocks"]), s["dim"], str(s["heads"]), s["grid"],
                   s["attention"], f"{s['gflops']:.4g}", f"{100 * s['share']:.1f}%"]
                  for s in c["stages"]],
            note=f"stem {c['by_stage'].get('stem', 0):.3g}, head "
                 f"{c['by_stage'].get('head', 0):.3g} GFLOPs; norms, pooling and elementwise "
                 f"ops: {c['other_gflops']:.3g} more"))]
    else:
        cost_part.append(html.P(d["cost_error"], className="message"))
    right = html.Div(cost_part)
    return [*head, html.Div([left, right], className="columns"),
            html.H4("Per-epoch curves"), dcc.Graph(figure=curves, config=dict(displaylogo=False)),
            html.H4("Full config (the run's params)"),
            html.Pre(yaml.safe_dump(d["config"], sort_keys=True, default_flow_style=None,
                                    width=100))]
