"""Waiting on events: the one way tests and tools wait (no sleeps, no polling)."""
import time

NOT_YET = object()   # what a probe returns while the thing waited for has not come


def wait_until(cond, probe, timeout, failure, check=None):
    """Block on `cond` (held while probing) until probe() returns something other than
    NOT_YET; return that. On timeout raise TimeoutError(failure()), said when it happens.
    check(): called at each wake, raises to end the wait (what is waited for can no longer
    come)."""
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            if check is not None:
                check()
            found = probe()
            if found is not NOT_YET:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(failure())
            cond.wait(left)


def wait_for_item(cond, items, predicate, timeout, after=0, what="event", check=None):
    """Block (on `cond`, which guards `items`) until an item from index `after` on
    satisfies predicate; return it, or raise TimeoutError saying what was seen."""
    def probe():
        for item in items[after:]:
            if predicate(item):
                return item
        return NOT_YET
    return wait_until(cond, probe, timeout,
                      lambda: f"no matching {what} within {timeout}s; saw {items[after:]}", check)
