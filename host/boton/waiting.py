"""Waiting on events: the one way tests and tools wait (no sleeps, no polling)."""
import time


def wait_for_item(cond, items, predicate, timeout, after=0, what="event"):
    """Block (on `cond`, which guards `items`) until an item from index `after` on
    satisfies predicate; return it, or raise TimeoutError saying what was seen."""
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            for item in items[after:]:
                if predicate(item):
                    return item
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching {what} within {timeout}s; saw {items[after:]}")
            cond.wait(left)
