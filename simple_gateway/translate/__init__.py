"""Translation between the OpenAI chat format clients speak and each provider's own format.

One module per provider and direction: `anthropic_request` / `anthropic_response`,
`gemini_request` / `gemini_response`; `openai` is the identity format (model rewritten).
`formats` maps a provider type to its wire format.
"""
