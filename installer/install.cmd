@echo off
rem install.cmd - installs ApcSched from the folder this script is in (the unpacked ZIP), or
rem upgrades an existing installation in place. Run it from an elevated prompt.
rem
rem   install.cmd [--allow-insecure-config]
rem
rem --allow-insecure-config is added to the service's image path (apcsvc.exe then starts even
rem if accounts other than SYSTEM and Administrators may change apcsvc.json, and logs a
rem warning). It is an option here and not a config key because whoever may write the config
rem could otherwise switch its own check off. Without it, an upgrade leaves the image path as
rem it is.
rem
rem   %ProgramFiles%\ApcSched   apcsvc.exe, apcctl.exe, README.md (replaced on every run)
rem   %ProgramData%\ApcSched    apcsvc.json (copied only if there is none: NEVER overwritten),
rem                             apcsvc.schema.json, and later history.db, runs\, logs\
rem
rem Fresh install: copy, register the event source, sc create (image path QUOTED, so a space
rem in "Program Files" can never start C:\Program.exe), description, failure actions, start.
rem Upgrade (the service exists): stop it and wait until STOPPED, copy, re-apply the settings,
rem start it again. History, configuration and logs are kept.
rem
rem Settings that Wine's sc.exe does not implement (failure actions, delayed-auto start,
rem failureflag) are correct for Windows; where sc refuses one, this script WARNS and goes on.
rem
rem Exit codes:
rem   0  installed or upgraded, and the service is running (warnings, if any, were printed)
rem   1  not run from an elevated (Administrator) prompt
rem   2  the package is incomplete: a file is missing next to install.cmd
rem   3  copying a file or creating a folder failed
rem   4  sc create failed
rem   5  upgrade: the running service did not stop within about 120 s
rem   6  the service did not start (see %ProgramData%\ApcSched\logs\apcsvc.log)
rem   7  the event source could not be registered
rem   8  an unknown option
setlocal EnableExtensions

set "NAME=apcsvc"
set "DISPLAY=ApcSched job scheduler"
set "SOURCE=ApcSched"
set "SRC=%~dp0"
set "BIN=%ProgramFiles%\ApcSched"
set "DATA=%ProgramData%\ApcSched"
set "CFG=%DATA%\apcsvc.json"
set "EVKEY=HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\%SOURCE%"
set "WARNINGS=0"
set "EXTRA="

:next_option
if "%~1"=="" goto :options_done
if /i "%~1"=="--allow-insecure-config" (
  set "EXTRA= --allow-insecure-config"
  shift
  goto :next_option
)
echo install.cmd: unknown option "%~1"; the only option is --allow-insecure-config 1>&2
exit /b 8
:options_done

rem "net session" succeeds only for an elevated administrator.
net session >nul 2>&1
if errorlevel 1 goto :not_elevated

for %%F in (apcsvc.exe apcctl.exe apcsvc.json apcsvc.schema.json) do (
  if not exist "%SRC%%%F" (
    echo install.cmd: %%F is missing from %SRC% - unpack the whole ZIP and run install.cmd from there 1>&2
    exit /b 2
  )
)

set "MODE=install"
sc query "%NAME%" >nul 2>&1
if not errorlevel 1 set "MODE=upgrade"

if "%MODE%"=="upgrade" (
  echo install.cmd: service %NAME% exists: upgrading it in place
  call :stop_service
  if errorlevel 1 goto :stop_failed
) else (
  echo install.cmd: installing ApcSched from %SRC%
)

rem --- files -------------------------------------------------------------------------------
if not exist "%BIN%" mkdir "%BIN%"
if not exist "%BIN%" goto :copy_failed
call :copy apcsvc.exe "%BIN%\apcsvc.exe"
if errorlevel 1 goto :copy_failed
call :copy apcctl.exe "%BIN%\apcctl.exe"
if errorlevel 1 goto :copy_failed
if not exist "%SRC%README.md" goto :no_readme
call :copy README.md "%BIN%\README.md"
if errorlevel 1 goto :copy_failed
:no_readme
echo install.cmd: copied apcsvc.exe, apcctl.exe to %BIN%

if exist "%DATA%" goto :data_exists
mkdir "%DATA%"
if not exist "%DATA%" goto :copy_failed
rem The same protected DACL the service gives the folders it creates (README.md (section Running apcsvc.exe)):
rem SYSTEM and Administrators full control, Users read and execute, nothing from ProgramData
rem (where Users may create files). An existing folder keeps the DACL its owner chose.
icacls "%DATA%" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F *S-1-5-32-545:(OI)(CI)RX >nul 2>&1
if errorlevel 1 call :warn "could not set the DACL of %DATA% with icacls; set it by hand (README.md (section Install on Windows))"
:data_exists
call :copy apcsvc.schema.json "%DATA%\apcsvc.schema.json"
if errorlevel 1 goto :copy_failed
if exist "%CFG%" (
  echo install.cmd: keeping the existing configuration %CFG%
) else (
  call :copy apcsvc.json "%CFG%"
  if errorlevel 1 goto :copy_failed
  echo install.cmd: wrote the default configuration %CFG%
  call :protect_config
)

rem --- event source ------------------------------------------------------------------------
reg add "%EVKEY%" /v EventMessageFile /t REG_EXPAND_SZ /d "%BIN%\apcsvc.exe" /f >nul
if errorlevel 1 goto :source_failed
reg add "%EVKEY%" /v TypesSupported /t REG_DWORD /d 7 /f >nul
if errorlevel 1 goto :source_failed
echo install.cmd: registered event source %SOURCE%

rem --- service -----------------------------------------------------------------------------
if "%MODE%"=="upgrade" goto :configure
sc create "%NAME%" binPath= "\"%BIN%\apcsvc.exe\" --config \"%CFG%\"%EXTRA%" start= delayed-auto DisplayName= "%DISPLAY%" >"%TEMP%\apcsched-sc.txt" 2>&1
if errorlevel 1 goto :create_failed
echo install.cmd: created service %NAME%: "%BIN%\apcsvc.exe" --config "%CFG%"%EXTRA%

:configure
rem An upgrade with the option adds it to the existing image path (without it: unchanged).
if "%MODE%"=="install" goto :image_done
if "%EXTRA%"=="" goto :image_done
sc config "%NAME%" binPath= "\"%BIN%\apcsvc.exe\" --config \"%CFG%\"%EXTRA%" >nul
if errorlevel 1 goto :image_failed
echo install.cmd: image path: "%BIN%\apcsvc.exe" --config "%CFG%"%EXTRA%
goto :image_done
:image_failed
call :warn "sc config failed: the image path keeps its old options"
:image_done
sc description "%NAME%" "Runs scheduled and on-demand jobs (ApcSched). Control it with apcctl.exe; the run history is an SQLite database next to the configuration." >nul
if errorlevel 1 call :warn "sc description failed"
sc failure "%NAME%" reset= 86400 actions= restart/5000/restart/10000/restart/60000 >nul
if errorlevel 1 call :warn "sc failure failed: the service will not be restarted after a crash"
sc failureflag "%NAME%" 1 >nul 2>&1
if errorlevel 1 call :warn "sc failureflag failed: a non-zero service exit will not count as a failure (Wine does not implement it)"

sc start "%NAME%" >"%TEMP%\apcsched-sc.txt" 2>&1
if errorlevel 1 goto :start_failed
call :wait_state RUNNING STOPPED
if errorlevel 1 goto :start_failed
echo install.cmd: service %NAME% is running
del "%TEMP%\apcsched-sc.txt" >nul 2>&1
if not "%WARNINGS%"=="0" echo install.cmd: done; warnings above: %WARNINGS%
if "%WARNINGS%"=="0" echo install.cmd: done
exit /b 0

rem --- helpers -----------------------------------------------------------------------------
rem Each "call :x" is followed by "if errorlevel 1", never by "||": Wine's cmd.exe runs the
rem "||" branch after every call, whatever the label returned.
:copy
copy /y "%SRC%%~1" "%~2" >nul
exit /b %errorlevel%

rem The configuration file the service trusts: only SYSTEM and Administrators may change it
rem (apcsvc.exe refuses to start otherwise), Users may read it, Administrators own it.
:protect_config
icacls "%CFG%" /inheritance:r /grant:r *S-1-5-18:F *S-1-5-32-544:F *S-1-5-32-545:R >nul 2>&1
if errorlevel 1 call :warn "could not set the DACL of %CFG% with icacls; the service refuses a config others may change (README.md (section Running apcsvc.exe))"
icacls "%CFG%" /setowner *S-1-5-32-544 >nul 2>&1
if errorlevel 1 call :warn "could not make Administrators the owner of %CFG% with icacls"
exit /b 0

:warn
echo install.cmd: warning: %~1
set /a WARNINGS+=1
exit /b 0

rem Stops the service unless it is stopped already, then waits for STOPPED.
:stop_service
sc query "%NAME%" | find "STOPPED" >nul
if not errorlevel 1 exit /b 0
echo install.cmd: stopping service %NAME%
sc stop "%NAME%" >nul
call :wait_state STOPPED
exit /b %errorlevel%

rem find, not findstr: Wine 8's findstr is a stub that matches everything.
rem Polls sc query (about once a second, 120 times at most) until the service reports the
rem state %1; returns 1 at once if it reports the state %2 instead (a start that failed).
:wait_state
set /a TRIES=0
:wait_again
sc query "%NAME%" | find "%~1" >nul
if not errorlevel 1 exit /b 0
rem No pipe inside a parenthesised block: Wine's cmd.exe loses the redirection there.
if "%~2"=="" goto :wait_more
sc query "%NAME%" | find "%~2" >nul
if not errorlevel 1 exit /b 1
:wait_more
set /a TRIES+=1
if %TRIES% geq 120 exit /b 1
ping -n 2 127.0.0.1 >nul 2>&1
goto :wait_again

rem --- failures ----------------------------------------------------------------------------
:not_elevated
echo install.cmd: this needs an elevated prompt: right-click "Command Prompt", choose "Run as administrator", and run install.cmd again 1>&2
exit /b 1
:copy_failed
echo install.cmd: copying the files to %BIN% / %DATA% failed 1>&2
exit /b 3
:create_failed
type "%TEMP%\apcsched-sc.txt" 1>&2
echo install.cmd: sc create %NAME% failed 1>&2
exit /b 4
:stop_failed
echo install.cmd: service %NAME% did not stop; stop it with "sc stop %NAME%" and run install.cmd again 1>&2
exit /b 5
:start_failed
type "%TEMP%\apcsched-sc.txt" 1>&2
echo install.cmd: service %NAME% did not start; see %DATA%\logs\apcsvc.log and the Application event log 1>&2
exit /b 6
:source_failed
echo install.cmd: registering the event source %SOURCE% failed 1>&2
exit /b 7
