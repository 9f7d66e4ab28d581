"""Waiting on events: the one way tests and tools wait (no sleeps, no polling)."""
import time


def wait_for_item(cond, items, predicate, timeout, after=0, what="event", check=None):
    """Block (on `cond`, which guards `items`) until an item from index `after` on
    satisfies predicate; return it, or raise TimeoutError saying what was seen. check():
    called at each wake, raises to end the wait (what is waited for can no longer come)."""
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            if check is not None:
                check()
            for item in items[after:]:
                if predicate(item):
                    return item
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching {what} within {timeout}s; saw {items[after:]}")
            cond.wait(left)
