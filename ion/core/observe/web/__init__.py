"""The observer's web view: the system's containers, processes, supervision
trees, conversations, message sequence chart and queues, live, in a browser.

A plain C{twisted.web} resource tree (L{resources}) the container serves as a
child service (L{service.WebView}) when C{web.listen} is set; its own static
script and style sheet (C{static/}), nothing loaded from elsewhere.
"""
