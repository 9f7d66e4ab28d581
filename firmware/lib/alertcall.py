# Voice-call side of the alert machine (mixed into alert.AlertMachine): dialing
# C4 with backoff, the fallback numbers, call progress and C4 call-backs.
# Sans-IO; see alert.py for the events and actions.

from alertsms import mask


class CallMixin:
    def _dial(self, now, acts):
        num = self.dial_list[self.ni]
        self.att += 1
        self.call = "dialing"
        self.connected = False
        acts.append(("covert_audio",))
        acts.append(("dial", num))
        acts.append(("set_timer", "dial_timeout", self.cfg["dial_timeout_s"] * 1000))
        self._log(acts, "dial", "%s #%d" % (mask(num), self.att))
        self._dirty = True

    def _call_failed(self, now, acts, cause):
        self._log(acts, "call_failed", str(cause))
        if not self.active or not self.dial_list:
            return
        c = self.cfg
        back = c["redial_backoff_s"] or [5]
        if self.att >= c["attempts_per_number"]:
            self.ni += 1
            self.att = 0
            if self.ni >= len(self.dial_list):
                self.ni = 0
                delay = c["cycle_backoff_s"]
            else:
                delay = back[0]
        else:
            delay = back[min(self.att, len(back)) - 1] if self.att > 0 else back[0]
        acts.append(("set_timer", "redial", delay * 1000))
        self._dirty = True

    def _on_call_state(self, ev, now, acts):
        st = ev[1]
        cause = ev[2] if len(ev) > 2 else None
        if st in ("dialing", "alerting"):
            if self.call in ("dialing", "alerting"):
                self.call = st
            return
        if st == "active":
            if self.call == "hangup":
                return                  # we are hanging it up
            self.call = "active"
            self.connected = True
            self.att = 0                # answered: a later drop starts a new series
            acts.append(("cancel_timer", "dial_timeout"))
            self._log(acts, "call_active", "")
            return
        if st != "ended":
            self._log(acts, "call_state?", str(st))
            return
        prev, was = self.call, self.connected
        self.call = "idle"
        self.connected = False
        if prev == "idle":
            return
        acts.append(("cancel_timer", "dial_timeout"))
        if prev == "hangup":
            self._log(acts, "call_ended", "local")
            return
        if was and cause == "remote":
            self._log(acts, "call_ended", "remote")
            if self.active:
                self.call_done = True
                self._dirty = True
            return
        self._call_failed(now, acts, cause)

    def _on_incoming_call(self, ev, now, acts):
        num = ev[1] if len(ev) > 1 else ""
        if self.call == "answering":
            return                      # RING repeats for the call being answered
        if self.call != "idle" and self.call != "hangup":
            # (a ring while we wait for our hang-up to be confirmed means the line is free)
            self._log(acts, "incoming_ignored", mask(num))
            return
        window = self.active or self.cfg["callback_window_s"] < 0 or self.end_t is not None
        if num and self.is_c4(num) and window:
            acts.append(("cancel_timer", "redial"))
            acts.append(("covert_audio",))
            acts.append(("answer",))
            acts.append(("set_timer", "dial_timeout", self.cfg["dial_timeout_s"] * 1000))
            self.call = "answering"
            self.connected = False
            self._log(acts, "callback_answered", mask(num))
        else:
            acts.append(("reject",))
            self._log(acts, "incoming_rejected", mask(num))

    # --------------------------------------------------------------- alert
