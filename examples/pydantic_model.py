"""A Pydantic model as the schema: the value comes back as a validated instance."""

import os

from pydantic import BaseModel, Field

from extract import ExtractionFailed, Extractor


class Contact(BaseModel):
    name: str = Field(description="the person's full name")
    email: str | None = Field(description="email address, if given")
    company: str | None = Field(description="employer or organisation, if given")


TEXT = "Hi, this is Dana Whitfield from Northwind Traders; reach me at dana@northwind.example."

with Extractor(os.environ.get("EXTRACT_MODEL", "llama3.2"), options={"temperature": 0}) as ex:
    try:
        contact = ex.extract(TEXT, schema=Contact).value
    except ExtractionFailed as failure:
        print("no valid reply:", failure, "| last reply:", failure.raw[:200])
        raise SystemExit(1) from None
    print(repr(contact))
