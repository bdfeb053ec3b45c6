"""The analysts' feed: ``Feed.Subscribe`` over gRPC, and the plain functions behind it.

The store keeps a commit-ordered feed log (:mod:`otsentry.collector.store`);
this package serves it.  :mod:`._query` holds plain functions (filters,
store entries to ``otsentry.v1.FeedEvent``, JSON lines, text lines, times)
that every reader shares: the servicer, the ``feed`` command and the web
dashboard.  :class:`FeedHub` follows the head of the log for one process and
keeps a cache of the newest entries that the subscribers at the head share;
:class:`FeedServicer` is the thin gRPC adapter (register it with
:func:`add_feed_to_server`);
:class:`FeedClient` subscribes and resumes after a lost link.

    hub = FeedHub(store.engine)
    await hub.start()
    server, port = await run_server(pki_dir, commit=store.commit, feed=hub)
"""

from otsentry.collector.feed._client import FeedClient
from otsentry.collector.feed._hub import FeedHub
from otsentry.collector.feed._query import (KINDS, MAX_VALUES, Page, cursor_since, cursor_until,
                                            entry_to_event, event_frame, event_line,
                                            event_to_json, filter_from_proto, filter_to_proto,
                                            parse_time, read_page)
from otsentry.collector.feed._servicer import FeedServicer, add_feed_to_server

__all__ = [
    "KINDS", "MAX_VALUES", "FeedClient", "FeedHub", "FeedServicer", "Page", "add_feed_to_server",
    "cursor_since", "cursor_until", "entry_to_event", "event_frame", "event_line", "event_to_json",
    "filter_from_proto", "filter_to_proto", "parse_time", "read_page",
]
