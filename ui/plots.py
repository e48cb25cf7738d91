"""Figures shared by tabs: the noise optimisation's loss and energy curve."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go


def optimisation_curve(indices: Sequence[int], losses: Sequence[float | None], energies: Sequence[float | None],
                       source_energy: float, m_out: float, m_out_note: str = "m_out") -> go.Figure:
    """Loss (left axis) and energy (right axis) per iteration, with the source's energy and m_out marked."""
    figure = go.Figure()
    figure.add_scatter(x=list(indices), y=list(losses), name="loss", mode="lines+markers", line_color="#6366f1",
                       hovertemplate="iteration %{x}: loss %{y:.3f}<extra></extra>")
    figure.add_scatter(x=list(indices), y=list(energies), name="energy E(x)", yaxis="y2", mode="lines+markers",
                       line_color="#dc2626", hovertemplate="iteration %{x}: energy %{y:.3f}<extra></extra>")
    for value, text, dash in ((source_energy, "source E(x)", "dot"), (m_out, m_out_note, "dash")):
        figure.add_hline(y=value, yref="y2", line_color="#991b1b", line_dash=dash, annotation_text=text,
                         annotation_position="bottom right")
    figure.update_layout(title="Optimisation: loss and energy per iteration", height=320,
                         margin=dict(l=10, r=10, t=40, b=30), xaxis=dict(title="iteration", dtick=1),
                         yaxis=dict(title="loss"), yaxis2=dict(title="energy", overlaying="y", side="right"),
                         legend=dict(orientation="h", y=-0.25))
    if not indices:
        figure.add_annotation(text="no iterations recorded", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return figure
