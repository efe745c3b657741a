"""In-service software upgrade of a redundant pair, in IOS's order:

    issu loadversion IMAGE   the Standby reloads with the new image and syncs back up to HOT
    issu runversion          switch over: the unit with the new image becomes Active; the rollback
                             timer starts
    issu acceptversion       stop the rollback timer
    issu commitversion       the other unit (now Standby, old image) reloads with the new image

If the rollback timer expires before `acceptversion`/`commitversion`, the pair switches back to the
old image's unit and the new image's unit reloads with the old image. `runversion` needs a Standby in
STANDBY HOT, which an incompatible image never reaches, so an incompatible upgrade stops there.
The ISSU state travels with the switchover, so the new Active knows where the upgrade stands.
"""
from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from emulators.cli.context import Confirm, Context
from emulators.cli.tree import command

from . import images

DEFAULT_ROLLBACK_S = 45 * 60


class IssuMixin:
    """Mixed into RpUnit (which provides the RF machinery these commands drive)."""

    def init_issu(self) -> None:
        self.issu: dict[str, Any] = {"state": "Init", "from": None, "to": None, "rollback_at": None,
                                     "rollback_s": DEFAULT_ROLLBACK_S, "accepted": False}

    def issu_for_peer(self) -> dict[str, Any]:
        return dict(self.issu)

    def adopt_issu(self, state: dict[str, Any] | None) -> None:
        if not state:
            return
        self.issu.update({k: state.get(k) for k in ("state", "from", "to", "accepted")})
        self.issu["rollback_s"] = int(state.get("rollback_s") or DEFAULT_ROLLBACK_S)
        if self.issu["state"] == "Run Version" and not self.issu["accepted"]:
            self.issu["rollback_at"] = time.time() + self.issu["rollback_s"]
        else:
            self.issu["rollback_at"] = None

    def tick(self) -> None:
        super().tick()  # type: ignore[misc]
        at = self.issu.get("rollback_at")
        if at is not None and time.time() >= at and self.role == "active":  # type: ignore[attr-defined]
            self._rollback("rollback timer expired")

    def _rollback(self, why: str) -> None:
        old = self.issu["from"]
        self.syslog(f"%ISSU-3-ROLLBACK: {why}: rolling back to {old}")  # type: ignore[attr-defined]
        self.publish("issu-rollback", reason=why, image=old)  # type: ignore[attr-defined]
        self.issu["rollback_at"] = None
        self._write_boot_image(old)
        state = {"state": "Init", "from": None, "to": None, "accepted": False, "rollback_s": self.issu["rollback_s"]}
        self.init_issu()
        if not self.switchover_problem():  # type: ignore[attr-defined]
            self.switch_over(f"ISSU rollback to {old}", None, issu=state)  # type: ignore[attr-defined]
        else:
            self.last_reload_reason = f"ISSU rollback to {old}"  # type: ignore[attr-defined]
            self.perform_reload()  # type: ignore[attr-defined]

    def order_image(self, version: str) -> None:
        """Tell the Standby to reload with `version`, and keep the order until it has reloaded: an
        order sent while the channel is down (a peer lost for a moment) would be lost, and the
        Standby would stay on its old image while the operator was told otherwise."""
        now = time.time()
        self._image_order: dict[str, Any] | None = {"image": version, "at": now, "id": f"{now:.6f}"}
        self._send({"type": "load-image", "image": version, "order": self._image_order["id"]})  # type: ignore[attr-defined]

    def check_image_order(self, hello: dict[str, Any]) -> None:
        """On the Active, each hello from the Standby (the channel came back): a Standby booted
        since the order has obeyed it; one that has not is sent the order again."""
        o = getattr(self, "_image_order", None)
        if not o or self.role != "active":  # type: ignore[attr-defined]
            return
        if float(hello.get("boot") or 0) >= o["at"]:
            self._image_order = None
            return
        self.syslog(f"%ISSU-4-RESEND: Standby has not reloaded with {o['image']} yet; order sent again")  # type: ignore[attr-defined]
        self._send({"type": "load-image", "image": o["image"], "order": o["id"]})  # type: ignore[attr-defined]

    def _write_boot_image(self, version: str) -> None:
        from .unit import BOOT_IMAGE_FILE

        path = self.state_dir / BOOT_IMAGE_FILE  # type: ignore[attr-defined]
        path.write_text(version + "\n")

    def _rx_load_image(self, m: dict[str, Any]) -> None:
        """On the Standby: reload with the image the Active asked for."""
        im = images.image(str(m["image"]))
        if self.role != "standby":  # type: ignore[attr-defined]
            return
        order = m.get("order")
        if order is not None and order == getattr(self, "_obeyed_order", None):
            return                      # a repeat that crossed our reload: obeyed already
        self._obeyed_order = order
        self._write_boot_image(im.version)
        self.syslog(f"%ISSU-5-LOADVERSION: Reloading with image {im.version}")  # type: ignore[attr-defined]
        self.last_reload_reason = f"ISSU load of {im.version}"  # type: ignore[attr-defined]
        self.perform_reload()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ commands
    def _issu_guard(self, ctx: Context, *states: str) -> bool:
        if self.role != "active":  # type: ignore[attr-defined]
            ctx.print("% ISSU commands run on the active unit")
            return False
        if self.issu["state"] not in states:
            ctx.print(f"% ISSU state is {self.issu['state']}; this command needs {' or '.join(states)}")
            return False
        return True

    @command("exec", "issu loadversion <image:word>", priv=15,
             help={"issu": "In-service software upgrade", "loadversion": "Load a new image on the standby",
                   "image": "Image version or file name"})
    def cmd_issu_loadversion(self, ctx: Context, image: str) -> None:
        if not self._issu_guard(ctx, "Init"):
            return
        try:
            im = images.image(image)
        except images.UnknownImage as exc:
            ctx.print(f"% {exc}")
            return
        if self.channel is None or not self.channel.up:  # type: ignore[attr-defined]
            ctx.print("% Standby RP is not present")
            return
        self.issu.update({"state": "Load Version", "from": self.image.version, "to": im.version,  # type: ignore[attr-defined]
                          "standby_was": self.peer.get("image"), "accepted": False, "rollback_at": None})  # type: ignore[attr-defined]
        self.order_image(im.version)
        self.syslog(f"%ISSU-5-LOADVERSION: Standby is reloading with {im.version}")  # type: ignore[attr-defined]
        ctx.print(f"% issu loadversion executed successfully, Standby is being reloaded with {im.version}")

    @command("exec", "issu runversion", priv=15, help={"runversion": "Switch over to the standby's new image"})
    def cmd_issu_runversion(self, ctx: Context) -> Generator[Any, Any, None]:
        if not self._issu_guard(ctx, "Load Version"):
            return
        if self.peer_state != "STANDBY HOT" or self.operating_mode != "sso":  # type: ignore[attr-defined]
            reason = self.mode_reason or f"peer state {self.peer_state}"  # type: ignore[attr-defined]
            ctx.print(f"% Standby is not in STANDBY HOT ({reason}); cannot run the new version")
            return
        ok = yield Confirm("This command will reload the Active unit.  Proceed ? [confirm]")
        if not ok:
            return
        state = {**self.issu, "state": "Run Version", "accepted": False}
        self.init_issu()
        self.switch_over(f"ISSU runversion to {state['to']}", ctx.session, issu=state)  # type: ignore[attr-defined]

    @command("exec", "issu acceptversion", priv=15, help={"acceptversion": "Stop the rollback timer"})
    def cmd_issu_acceptversion(self, ctx: Context) -> None:
        if not self._issu_guard(ctx, "Run Version"):
            return
        self.issu["accepted"] = True
        self.issu["rollback_at"] = None
        ctx.print("% Rollback timer stopped. Please issue the commitversion command.")

    @command("exec", "issu commitversion", priv=15, help={"commitversion": "Load the new image on the other unit"})
    def cmd_issu_commitversion(self, ctx: Context) -> None:
        if not self._issu_guard(ctx, "Run Version"):
            return
        if self.channel is None or not self.channel.up:  # type: ignore[attr-defined]
            ctx.print("% Standby RP is not present")
            return
        new = self.issu["to"]
        self.order_image(new)
        self.init_issu()
        self.syslog(f"%ISSU-5-COMMITVERSION: Standby is reloading with {new}")  # type: ignore[attr-defined]
        ctx.print(f"% issu commitversion executed successfully, Standby is being reloaded with {new}")

    @command("exec", "issu abortversion", priv=15, help={"abortversion": "Abandon the upgrade"})
    def cmd_issu_abortversion(self, ctx: Context) -> None:
        if not self._issu_guard(ctx, "Load Version", "Run Version"):
            return
        if self.issu["state"] == "Load Version":
            old = self.issu.get("standby_was") or self.issu["from"]
            self.order_image(old)
            self.init_issu()
            ctx.print(f"% issu abortversion executed successfully, Standby is being reloaded with {old}")
            return
        self._rollback("issu abortversion")

    @command("exec", "issu set rollback-timer <seconds:int:1-7200>", priv=15,
             help={"set": "ISSU settings", "rollback-timer": "Seconds before an uncommitted upgrade rolls back",
                   "seconds": "Seconds"})
    def cmd_issu_rollback_timer(self, ctx: Context, seconds: int) -> None:
        self.issu["rollback_s"] = seconds
        ctx.print(f"% Rollback timer set to {seconds} seconds")

    @command("exec", "show issu state [detail]", priv=1,
             help={"issu": "ISSU information", "state": "ISSU state", "detail": "Detailed information"})
    def cmd_show_issu_state(self, ctx: Context, **_: Any) -> None:
        p = ctx.print
        at = self.issu.get("rollback_at")
        p(f"                        Slot = {1 if self.unit == 'primary' else 2}")  # type: ignore[attr-defined]
        p(f"                    RP State = {'Active' if self.role == 'active' else 'Standby'}")  # type: ignore[attr-defined]
        p(f"                  ISSU State = {self.issu['state']}")
        p(f"               Boot Variable = bootflash:{self.image.name},12;")  # type: ignore[attr-defined]
        p(f"              Operating Mode = {self.operating_mode}")  # type: ignore[attr-defined]
        p(f"             Current Version = {self.image.version}")  # type: ignore[attr-defined]
        if self.issu["from"]:
            p(f"             Pre-ISSU Version = {self.issu['from']}")
            p(f"            Post-ISSU Version = {self.issu['to']}")
        if at is not None:
            left = max(0, int(at - time.time()))
            p(f"              Rollback Timer = {left // 3600:02d}:{left % 3600 // 60:02d}:{left % 60:02d} remaining")
        else:
            p(f"              Rollback Timer = {'stopped (accepted)' if self.issu.get('accepted') else 'inactive'}"
              f", {self.issu['rollback_s']} seconds")
