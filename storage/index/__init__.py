"""The series index: series ids <-> label sets, and postings for matchers.

Series ids are dense ints handed out in creation order and never reused, so a
postings list (the ids of the series holding one `name="value"` pair) stays
sorted by just appending, and an id read from an old snapshot of the head can
never name a different series. Ids are 32-bit in postings, so one process can
create about 4 billion series in its life; a restart renumbers (replay
rebuilds the index from the WAL).

Memory is what this package is mostly about: every distinct `(name, value)`
pair is one shared tuple with a small integer id (`pairs`), so a series costs
its `Labels` tuple (one pointer per label), one dict entry, its pair ids
(4 bytes per label) and its postings entries, never a copy of strings.

The write path speaks pair ids: `Index.add_series` takes new series as numpy
columns of pair ids. The jobs, one module each:

- `index`: the `Index` itself: the series table (labels, ids, each series'
  pair ids as rows, live flags) and matcher evaluation (`select`);
- `postings`: series by pair, with the queue of entries not yet folded in;
- `values`: pairs by label name (regexes, `label_values`, `label_names`);
- `order`: every series' rank in label order (`sort_by_labels`);
- `pairs`, `valuescan`: the pair table, and one-pass regex scans over many
  values. (Ragged rows, `storage.csr`, stay beside the package: the head,
  merges and block reads use them too.)

Concurrency: reads mutate. A select or `label_values` folds queued postings
in, and `sort_by_labels` may re-rank; so the index is not safe to read while
anything else reads or writes it, and it is **event-loop only**: it belongs to
the thread that built it (the head is built on the loop), and every method
that reads postings, ranks or changes it raises `WrongThread` from any other
thread. Work offloaded to threads (PromQL evaluation, part merges, WAL I/O)
gets copies: a select's `SeriesSet` owns its arrays, and merges read
immutable parts only.
"""

from storage.index.index import Index, WrongThread

__all__ = ["Index", "WrongThread"]
