"""Where the planner's inputs come from: day-ahead prices (OTE, ENTSO-E, Nord Pool) and PV
forecasts (Open-Meteo, Forecast.Solar), each over an injected ``aiohttp.ClientSession``."""
