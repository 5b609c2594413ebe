@echo off
rem uninstall.cmd - removes ApcSched: stops the service and waits until it is STOPPED, deletes
rem it (sc delete), removes the event source and %ProgramFiles%\ApcSched. The configuration,
rem the run history, the run output and the logs in %ProgramData%\ApcSched are KEPT, so a
rem later install.cmd carries on where this one left off, unless /purge is given.
rem
rem   uninstall.cmd            keep %ProgramData%\ApcSched
rem   uninstall.cmd /purge     delete %ProgramData%\ApcSched as well (history, config, logs)
rem
rem Run it from an elevated prompt. Running it again is harmless: what is gone already is
rem skipped.
rem
rem Exit codes:
rem   0  removed (or there was nothing to remove)
rem   1  not run from an elevated (Administrator) prompt
rem   2  bad argument (only /purge is accepted)
rem   4  sc delete failed
rem   5  the service did not stop within about 120 s
rem   6  a folder could not be deleted (a file in it is open; close it and run uninstall.cmd again)
setlocal EnableExtensions

set "NAME=apcsvc"
set "SOURCE=ApcSched"
set "BIN=%ProgramFiles%\ApcSched"
set "DATA=%ProgramData%\ApcSched"
set "EVKEY=HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\%SOURCE%"
set "PURGE=0"

if /i "%~1"=="/purge" set "PURGE=1"
if not "%~1"=="" if "%PURGE%"=="0" goto :usage
if not "%~2"=="" goto :usage

net session >nul 2>&1
if errorlevel 1 goto :not_elevated

sc query "%NAME%" >nul 2>&1
if errorlevel 1 (
  echo uninstall.cmd: service %NAME% is not installed
) else (
  call :stop_service
  if errorlevel 1 goto :stop_failed
  sc delete "%NAME%" >"%TEMP%\apcsched-sc.txt" 2>&1
  if errorlevel 1 goto :delete_failed
  echo uninstall.cmd: deleted service %NAME%
)

reg query "%EVKEY%" >nul 2>&1
if not errorlevel 1 (
  reg delete "%EVKEY%" /f >nul 2>&1
  echo uninstall.cmd: removed event source %SOURCE%
)

if exist "%BIN%" (
  rmdir /s /q "%BIN%"
  if exist "%BIN%" goto :rmdir_failed
  echo uninstall.cmd: removed %BIN%
)

if "%PURGE%"=="1" (
  if exist "%DATA%" (
    rmdir /s /q "%DATA%"
    if exist "%DATA%" goto :rmdir_failed
    echo uninstall.cmd: purged %DATA% - configuration, history and logs are deleted
  )
) else (
  if exist "%DATA%" echo uninstall.cmd: kept %DATA% - configuration, history and logs; uninstall.cmd /purge deletes them
)
del "%TEMP%\apcsched-sc.txt" >nul 2>&1
echo uninstall.cmd: done
exit /b 0

rem Stops the service unless it is stopped already, then waits for STOPPED.
:stop_service
sc query "%NAME%" | find "STOPPED" >nul
if not errorlevel 1 exit /b 0
echo uninstall.cmd: stopping service %NAME%
sc stop "%NAME%" >nul
set /a TRIES=0
:stop_wait
sc query "%NAME%" | find "STOPPED" >nul
if not errorlevel 1 exit /b 0
set /a TRIES+=1
if %TRIES% geq 120 exit /b 1
ping -n 2 127.0.0.1 >nul 2>&1
goto :stop_wait

:usage
echo usage: uninstall.cmd [/purge] 1>&2
exit /b 2
:not_elevated
echo uninstall.cmd: this needs an elevated prompt: right-click "Command Prompt", choose "Run as administrator", and run uninstall.cmd again 1>&2
exit /b 1
:stop_failed
echo uninstall.cmd: service %NAME% did not stop; nothing was removed 1>&2
exit /b 5
:delete_failed
type "%TEMP%\apcsched-sc.txt" 1>&2
echo uninstall.cmd: sc delete %NAME% failed 1>&2
exit /b 4
:rmdir_failed
echo uninstall.cmd: a folder could not be deleted completely - a file in it is open; close it and run uninstall.cmd again 1>&2
exit /b 6
