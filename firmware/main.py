# Runs at every boot after boot.py: the panic button's firmware.
import app

app.main()
