"""A user's mistake that ``mypy --strict`` must catch: a typed ref given other params."""

from __future__ import annotations

from user_app import checkout_ref

from stemlog import WorkflowApp


async def main(app: WorkflowApp) -> None:
    await app.start(checkout_ref, {"order_id": "o-1"})  # refused: the ref takes an Order
    await app.start("billing.checkout", params=5)  # refused: params are a mapping
