"""Seeing the system: what a container records of its messages and how it is shown.

- L{tap}: every container's ring of the messages it sent and took (never the content);
- L{arcs}: tap rows as the arcs and lanes of a sequence chart, several containers merged;
- L{system}: every container's rows through the agents (C{get_trace}), on one clock;
- L{msc}, L{mscgen}, L{textchart}: the chart as SVG, as mscgen text, in a terminal;
- L{hub}: the live events (proc, msg, sup, cc, q) the web view streams;
- L{observer}: the opt-in system observer process (C{observer.app});
- L{web}: the web view (C{--web}).
"""
