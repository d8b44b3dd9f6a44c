"""Payments: a simulated user pays the bot's invoices, in Telegram Stars or another
currency, and buys its paid media."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tgrunner.testing.fake.users.chats import SimChat
from tgrunner.testing.fake.users.messages import JSON
from tgrunner.testing.fake.users.person import Person

__all__ = ["PaymentActions"]

_SHIPPING_ADDRESS = {
    "country_code": "US",
    "state": "CA",
    "city": "San Francisco",
    "street_line1": "1 Market St",
    "street_line2": "",
    "post_code": "94105",
}


class PaymentActions(Person):
    """Shipping and pre-checkout queries, completed payments and paid-media purchases."""

    def shipping_query(self, payload: str, *, address: Mapping[str, str] | None = None) -> JSON:
        """Choose a shipping address for a flexible-price invoice (``shipping_query``);
        ``address`` defaults to one in San Francisco."""
        query = {
            "id": self.population._query_id(),
            "from": self.as_dict(),
            "invoice_payload": payload,
            "shipping_address": dict(address or _SHIPPING_ADDRESS),
        }
        return self.population.push("shipping_query", query)

    def pre_checkout(
        self,
        payload: str,
        *,
        currency: str = "XTR",
        total_amount: int = 1,
        shipping_option_id: str | None = None,
        order_info: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Confirm a payment, which the bot must approve (``pre_checkout_query``). Defaults:
        1 Telegram Star (``XTR``)."""
        query: JSON = {
            "id": self.population._query_id(),
            "from": self.as_dict(),
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
        }
        if shipping_option_id is not None:
            query["shipping_option_id"] = shipping_option_id
        if order_info is not None:
            query["order_info"] = dict(order_info)
        return self.population.push("pre_checkout_query", query)

    def pay(
        self,
        payload: str,
        *,
        currency: str = "XTR",
        total_amount: int = 1,
        chat: SimChat | None = None,
    ) -> JSON:
        """The service message of a completed payment (``message`` with
        ``successful_payment``), by default of 1 Telegram Star in the chat with the bot."""
        pop = self.population
        payment = {
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
            "telegram_payment_charge_id": pop._token(24),
            # Star payments have no outside provider, so there is no provider charge id.
            "provider_payment_charge_id": "" if currency == "XTR" else pop._token(16),
        }
        return self._send({"successful_payment": payment}, chat, None, None)

    def purchase_paid_media(self, payload: str) -> JSON:
        """Buy paid media the bot sent with ``payload`` (``purchased_paid_media``)."""
        return self.population.push(
            "purchased_paid_media", {"from": self.as_dict(), "paid_media_payload": payload}
        )
