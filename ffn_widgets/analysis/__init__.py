"""Prompt-level analyses of the MLP memories: the logit lens (``lens``), what value vectors write
(``values``), neuron rankings (``neurons``), knowledge neurons (``knowledge``), neuron scaling with cached
states (``scaling``), the neuron card's data (``neuron_card``), Geva et al.'s layer statistics (``geva_stats``)
and what a prompt's views show (``prompt_summary``).

Every number a widget shows is computed here, in plain torch: no widget, IPython or anywidget import.
Each result has ``.figure()`` (plotly) or ``.to_frame()`` where a static export helps.
"""
